-- When a game session ends, archives what it held and deletes its
-- temporary data.
-- Trigger: IUNGO TRIGGER SET {*}:session del,expired session-cleanup
-- Session: HSET {s42}:session player p1 room r9, then PEXPIRE {s42}:session 200;
-- its data in {s42}:tmp:*, its archive in {s42}:history.
-- The session's hash tag keeps all of it in one hash slot, so the example
-- runs in a cluster too.
local tag = KEYS[1]:match('^{[^}]*}')
if not tag then
  return
end
-- What the session held, read before it went: HGETALL's field/value list.
local held = server.old_value()
if type(held) == 'table' and #held > 0 then
  local session = {ended = ARGV[1]}
  for i = 1, #held, 2 do
    session[held[i]] = held[i + 1]
  end
  server.call('RPUSH', tag .. ':history', cjson.encode(session))
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
