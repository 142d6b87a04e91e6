-- At midnight UTC, makes the day's coupons the current ones and clears the
-- day's redemption records.
-- Cron: IUNGO CRON SET daily-coupons "0 0 * * *" daily-coupons
-- The backend plans ahead: HSET coupons:day:2026-12-07 SAVE10 10 ...
-- Clients read coupons:today and SADD coupons:redeemed <user> on use.
-- ARGV[1] is the cron's name, ARGV[2] the scheduled time in Unix seconds.
local t = tonumber(ARGV[2])
-- The civil date of day number t / 86400 (days since 1970-01-01, UTC).
local z = math.floor(t / 86400) + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local d = doy - math.floor((153 * mp + 2) / 5) + 1
local m = mp < 10 and mp + 3 or mp - 9
local y = yoe + era * 400 + (m <= 2 and 1 or 0)
local day = string.format('%04d-%02d-%02d', y, m, d)

local planned = 'coupons:day:' .. day
if server.call('EXISTS', planned) == 1 then
  server.call('RENAME', planned, 'coupons:today')
else
  server.call('DEL', 'coupons:today')
end
server.call('DEL', 'coupons:redeemed')
server.call('SET', 'coupons:date', day)
server.log(server.LOG_NOTICE, 'coupons of ' .. day .. ' are in force')
