-- Deletes a game session's temporary data when the session ends.
-- Trigger: IUNGO TRIGGER SET {*}:session del,expired session-cleanup
-- Session: SET {s42}:session alive PX 200, data in {s42}:tmp:*
-- The session's hash tag keeps its data in its hash slot, so the example
-- runs in a cluster too.
local tag = KEYS[1]:match('^{[^}]*}')
if not tag then
  return
end
-- Escape glob characters so that a tag like {4*} matches only itself.
local pattern = tag:gsub('[%*%?%[%]\\]', '\\%0') .. ':tmp:*'
local cursor = '0'
repeat
  local page = server.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    server.call('UNLINK', key)
  end
until cursor == '0'
