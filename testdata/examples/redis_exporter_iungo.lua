-- For redis_exporter --script: the numeric fields of INFO iungo as
-- redis_script_values{key="iungo_<field>"}. redis_exporter exports only
-- the INFO fields it knows and fails a script value that is not a number,
-- so this keeps the numbers and drops the text (endpoint, mode, ...).
local out = {}
for line in redis.call('INFO', 'iungo'):gmatch('[^\r\n]+') do
  local field, value = line:match('^(iungo_[%w_]+):(%-?%d+%.?%d*)$')
  if field then
    out[#out + 1] = field
    out[#out + 1] = value
  end
end
return out
