-- Heartbeat of one lease held by this worker. ARGV: member, holder, lease_ms.
-- The holder is an execution's token, or 'r:NODE' for a message NODE took and has not started:
-- such a reception replaces the admitter's placeholder, so that NODE answers for the member.
-- A full Redis renews the lease all the same (it runs with allow-oom: see scripts.py).
-- Returns {status, cancel reason or ''}; status is 'ok', 'lost' (someone else holds the member,
-- or it ended) or 'gone' (the run no longer exists).
if not run_exists() then return {'gone', ''} end
local member, holder = ARGV[1], ARGV[2]
local lease_ms = tonumber(ARGV[3])
local current = redis.call('HGET', K_HOLDERS, member)
local status = 'ok'
if current == holder then
    redis.call('ZADD', K_LEASES, 'XX', now_ms() + lease_ms, member)
elseif current and string.sub(current, 1, 2) == 'a:' and string.sub(holder, 1, 2) == 'r:' then
    redis.call('HSET', K_HOLDERS, member, holder)
    redis.call('ZADD', K_LEASES, 'XX', now_ms() + lease_ms, member)
else
    status = 'lost'
end
return {status, redis.call('HGET', K_RUN, 'cancel') or ''}
