-- Adds each window's clicks per site to a sorted set: clicks per minute.
-- Trigger: IUNGO TRIGGER SET click:* incrby clicks-per-window WINDOW 60000
-- Clients count clicks with INCRBY click:<site> 1; the window's run gets
-- KEYS = the click:<site> keys that changed, ARGV = how many INCRBYs each
-- had (same order), then the window's start and end in Unix ms.
local n = #KEYS
local start = ARGV[n + 1]
for i = 1, n do
  local site = KEYS[i]:sub(#'click:' + 1)
  server.call('ZADD', 'clicks:' .. start, ARGV[i], site)
  server.call('ZINCRBY', 'clicks:total', ARGV[i], site)
end
server.call('RPUSH', 'clicks:windows', start)
