-- A worker is alive (loaded without common.lua). KEYS[1]: the workers (sorted set hostname ->
-- presence expiry, ms), KEYS[2]: the worker's tools key, KEYS[3]: its names key.
-- ARGV: hostname, ttl_ms. Pushes the worker's presence and its keys to now + ttl_ms and drops
-- workers whose presence expired. Returns 0 when a key is gone (the worker writes it again).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl_ms, ARGV[1])
local tools = redis.call('PEXPIRE', KEYS[2], ttl_ms)
local strategies = redis.call('PEXPIRE', KEYS[3], ttl_ms)
return math.min(tools, strategies)
