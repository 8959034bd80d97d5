-- A worker declares the limit of one of its concurrency groups (loaded without common.lua).
-- KEYS[1]: the group's declarations (sorted set hostname -> limit), KEYS[2]: when each
-- declaration lapses (sorted set hostname -> presence expiry, ms); both carry the group's
-- hash tag, so that the group's admission reads them on its own shard (see group.lua).
-- ARGV: hostname, limit, ttl_ms (the worker's presence: it declares again every watchdog pass).
-- Declarations that lapsed, or that their worker withdrew as it stopped, are dropped on the
-- way: a killed worker never withdraws its own, and a scaled service names each new
-- container anew.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local host, limit, ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
for _, other in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local expiry = redis.call('ZSCORE', KEYS[2], other)
    if other ~= host and (not expiry or tonumber(expiry) <= now) then
        redis.call('ZREM', KEYS[1], other)
        redis.call('ZREM', KEYS[2], other)
    end
end
redis.call('ZADD', KEYS[1], limit, host)
redis.call('ZADD', KEYS[2], now + ttl_ms, host)
return 0
