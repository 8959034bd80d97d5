-- Pause a pool for every worker for ARGV[1] ms (loaded without common.lua); KEYS[1]: its
-- pause key. A longer pause already set is kept: a pause is only ever extended.
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
    redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
