-- Take a slot of a limit shared by all workers (loaded without common.lua).
-- KEYS[1]: holders (sorted set token -> expiry ms), KEYS[2]: calls of the last minute.
-- ARGV: token, max_concurrent (0: none), per_minute (0: none), lease_ms (a live holder renews
-- its lease with renew_limit.lua).
-- Returns 0 when the slot is taken, else how many ms to wait before trying again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, max_concurrent = ARGV[1], tonumber(ARGV[2])
local per_minute, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
if max_concurrent > 0 then
    -- A holder that died without releasing frees its slot when its lease expires.
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    if redis.call('ZCARD', KEYS[1]) >= max_concurrent then return 25 end
end
if per_minute > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
    if redis.call('ZCARD', KEYS[2]) >= per_minute then
        local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
        return math.max(1, tonumber(oldest[2]) + 60000 - now)
    end
    redis.call('ZADD', KEYS[2], now, token)
    redis.call('PEXPIRE', KEYS[2], 61000)
end
if max_concurrent > 0 then
    redis.call('ZADD', KEYS[1], now + lease_ms, token)
    redis.call('PEXPIRE', KEYS[1], lease_ms * 2)
end
return 0
