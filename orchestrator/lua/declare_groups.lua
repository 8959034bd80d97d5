-- A worker declares the limits of its concurrency groups (loaded without common.lua).
-- KEYS[1]: the workers (sorted set hostname -> presence expiry, ms), KEYS[2]: every group name
-- ever declared, KEYS[3..]: each group's declarations (sorted set hostname -> limit).
-- ARGV: hostname, then (group name, limit) for each group, in the order of KEYS[3..].
-- Declarations of workers no longer present are dropped on the way: a killed worker never
-- withdraws its own, and a scaled service names each new container anew.
local host = ARGV[1]
for i = 3, #KEYS do
    local name, limit = ARGV[2 * i - 4], ARGV[2 * i - 3]
    for _, other in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
        if other ~= host and not redis.call('ZSCORE', KEYS[1], other) then
            redis.call('ZREM', KEYS[i], other)
        end
    end
    redis.call('ZADD', KEYS[i], limit, host)
    redis.call('SADD', KEYS[2], name)
end
return 0
