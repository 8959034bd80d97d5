-- A call of a tokens-per-minute pool is being sent: it counts from now (loaded without
-- common.lua). It was reserved earlier, and the time between (a client made, an SDK imported)
-- must not shorten its stay in the window: the provider counts it from its arrival.
-- KEYS[1]: the pool's calls holding tokens (sorted set token -> time), KEYS[2]: their tokens.
-- ARGV: token, how long the keys outlive their newest call (ms).
-- Returns 1 when restamped, 0 when the call is no longer in the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
