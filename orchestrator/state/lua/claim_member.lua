-- A member execution starts: take the lease, or learn that it must not run.
-- ARGV: member, token, lease_ms, timeout_ms, start_event_json, gone_holder ('' for none): the
-- token of an execution whose worker process is known to be gone (workers/execution/liveness.py).
-- Returns {'done', output} for a member already completed (a late duplicate),
-- {'cancelled', reason} when the run is being cancelled (the lease is taken, so the caller
-- ends it as cancelled at once), {'busy'} when another live execution holds the lease (with
-- its token, {'busy', holder}; or the member is not in flight), {'gone'} when the run no
-- longer exists,
-- {'timeout', timeout_ms} when the member's time limit (counted from its first claim) has
-- passed (the lease is taken, so the caller ends it), and {'run', input, checkpoint or '',
-- ms left, taken over} otherwise: a member that an earlier execution left mid-way resumes from
-- its last checkpoint, within the time its first execution started with. 'taken over' is '1'
-- when an earlier execution claimed the member (its lease expired, or it died), else '0'.
if not run_exists() then return {'gone'} end
local member, token = ARGV[1], ARGV[2]
local lease_ms, timeout_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local output = redis.call('HGET', K_OUTPUTS, member)
if output then return {'done', output} end
local expiry = redis.call('ZSCORE', K_LEASES, member)
if not expiry then
    local cancel = redis.call('HGET', K_RUN, 'cancel')
    if cancel then return {'cancelled', cancel} end
    return {'busy'}
end
local now = now_ms()
local holder = redis.call('HGET', K_HOLDERS, member)
-- A queued or prefetched member may be claimed by any execution; a running one only once its
-- lease expired (the watchdog would hand it over next), or at once when its holder's process
-- is known to be gone (and is still the holder).
if holder and holder ~= token and not is_placeholder(holder) and tonumber(expiry) > now
    and holder ~= ARGV[6] then
    return {'busy', holder}
end
-- The execution displaced (whose lease expired, whose process is gone, or an earlier attempt
-- of this delivery taking its token back) makes no more calls that count: what it has in
-- flight is charged now, so that its reservations never hold the budget for good.
if holder and not is_placeholder(holder) and not is_ending(holder) then
    budget_charge_orphans(holder)
end
redis.call('HSET', K_HOLDERS, member, token)
redis.call('ZADD', K_LEASES, now + lease_ms, member)
-- A cancelled run's member is taken all the same, so that this execution ends it now (its
-- cancelled output is stored under its lease) instead of the lease of one that went away.
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
local deadline = num(K_DEADLINES, member)
-- Only a claim sets a member's deadline: one already there means another execution held it.
local taken_over = deadline and '1' or '0'
if not deadline then
    deadline = now + timeout_ms
    redis.call('HSET', K_DEADLINES, member, deadline)
end
if deadline <= now then return {'timeout', tostring(timeout_ms)} end
emit(ARGV[5])
local input
if member == 'final' then
    input = redis.call('HGET', K_RUN, 'final_prompt')
else
    input = redis.call('LINDEX', K_ITEMS, tonumber(member))
end
return {'run', input or '', redis.call('HGET', K_CHECKPOINTS, member) or '', tostring(deadline - now),
    taken_over}
