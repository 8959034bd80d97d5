-- A worker is alive (loaded without common.lua). KEYS[1]: the workers (sorted set hostname ->
-- presence expiry, ms). ARGV: hostname, ttl_ms. Pushes the worker's presence to now + ttl_ms
-- and drops workers whose presence expired. (The worker's own keys, which live on other
-- shards of a Redis Cluster, are pushed on by the caller.)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
