-- Heartbeat of one running member. ARGV: member, token, lease_ms.
-- Returns the cancel reason ('' when none); the lease is extended only for its holder.
local member, token = ARGV[1], ARGV[2]
if redis.call('HGET', K_HOLDERS, member) == token then
    redis.call('ZADD', K_LEASES, 'XX', now_ms() + tonumber(ARGV[3]), member)
end
return redis.call('HGET', K_RUN, 'cancel') or ''
