#!lua flags=allow-oom
-- allow-oom: a full Redis (maxmemory under noeviction) refuses other writes, but a live holder
-- keeps its slot meanwhile; refused, its lease would run out and another worker take the slot
-- while it still holds it (acquire_limit's writes pass after its first, a deletion).
-- Extend a live holder's slot of a shared limit (loaded without common.lua).
-- KEYS[1]: holders (sorted set token -> expiry ms). ARGV: token, lease_ms.
-- Returns 1 when the token still holds its slot, else 0 (released, or reclaimed after its
-- lease expired): a lost slot is never taken back, since someone else may hold it now.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, lease_ms = ARGV[1], tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], token) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + lease_ms, token)
-- The set must outlive its longest holder, even when no one acquires for a while.
if redis.call('PTTL', KEYS[1]) < lease_ms * 2 then
    redis.call('PEXPIRE', KEYS[1], lease_ms * 2)
end
return 1
