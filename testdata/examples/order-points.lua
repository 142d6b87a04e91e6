-- Credits loyalty points once, when an order hash turns "completed".
-- Trigger: IUNGO TRIGGER SET {*}:order:* hset order-points
-- Order:   HSET {u7}:order:1001 user u7 amount 120 status pending
-- The user's hash tag keeps the order, the points and the record of what
-- was credited in one hash slot, so the example runs in a cluster too.
local order = KEYS[1]
local tag = order:match('^{[^}]*}')
if not tag then
  return server.error_reply('ORDER ' .. order .. ' has no {user} hash tag')
end
if server.call('HGET', order, 'status') ~= 'completed' then
  return
end
-- SADD answers 1 only the first time: a hash written again pays nothing.
if server.call('SADD', tag .. ':points:credited', order) == 0 then
  return
end
local amount = server.call('HGET', order, 'amount')
if not amount then
  return server.error_reply('ORDER ' .. order .. ' has no amount')
end
server.call('INCRBY', tag .. ':points', amount)
