-- Credits loyalty points once, when an order hash turns "completed".
-- Trigger: IUNGO TRIGGER SET order:* hset order-points
-- Order: HSET order:1001 user u7 amount 120 status pending
local order = KEYS[1]
if server.call('HGET', order, 'status') ~= 'completed' then
  return
end
-- SADD answers 1 only the first time: a hash written again pays nothing.
if server.call('SADD', 'points:credited', order) == 0 then
  return
end
local user = server.call('HGET', order, 'user')
local amount = server.call('HGET', order, 'amount')
if not user or not amount then
  return server.error_reply('ORDER ' .. order .. ' has no user or amount')
end
server.call('INCRBY', 'points:' .. user, amount)
