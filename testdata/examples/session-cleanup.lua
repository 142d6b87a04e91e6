-- Deletes a game session's temporary data when the session key expires.
-- Trigger: IUNGO TRIGGER SET session:* expired session-cleanup
-- Session: SET session:42 alive PX 200, data in session-data:42:*
local id = string.sub(KEYS[1], #'session:' + 1)
-- Escape glob characters so that an id like "4*" matches only itself.
local pattern = 'session-data:' .. id:gsub('[%*%?%[%]\\]', '\\%0') .. ':*'
local cursor = '0'
repeat
  local page = server.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    server.call('UNLINK', key)
  end
until cursor == '0'
