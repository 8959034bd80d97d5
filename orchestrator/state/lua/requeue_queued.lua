-- The Redis server changed (a failover, a restart): the broker may have lost the messages of
-- members that wait in the queue, for the old server's last writes may be gone while the run
-- still says they wait (a message taken just before the cut, whose reception was lost). Each
-- queued member goes back under an admission lease of worker ARGV[1] for ARGV[2] ms, to be
-- published again: a second message of a member that still has one is dropped by its claim.
-- Returns the members to publish.
if not run_exists() then return {} end
local holder = 'a:' .. ARGV[1]
local expiry = now_ms() + tonumber(ARGV[2])
local members = redis.call('ZRANGEBYSCORE', K_LEASES, QUEUED, QUEUED)
for _, member in ipairs(members) do
    redis.call('HSET', K_HOLDERS, member, holder)
    redis.call('ZADD', K_LEASES, expiry, member)
end
return members
