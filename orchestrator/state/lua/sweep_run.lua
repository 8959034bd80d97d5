-- The watchdog's look at one run. A run whose deadline comes before its next sweep should be
-- swept at its deadline, so that it ends on time: the reply's last element is then the
-- deadline (ms, else ''), and the caller moves the run's next sweep to it in the active runs
-- (a key of no run, which may live on another shard). ARGV: lease_ms, node (the sweeping
-- worker, which publishes what is handed back to it), the cancel channel, sweep_ms (the
-- interval the run's next sweep was pushed on by).
-- Applies the deadline. A member whose lease expired is handed back to be published again
-- (its worker died or hung, or its admitter never confirmed publishing it), or ended as timed
-- out when its time limit has passed. In a cancelled run every member not running (queued,
-- prefetched, expired) is abandoned, and the members never published are returned as a range,
-- to be ended in bulk. Members being ended keep a lease until their output is stored, so an
-- ending lost with its process is found here again. Members the budget denied whose ending
-- was lost are returned once the run has been quiet for a lease.
-- It also finds the steps between members that a dead process may have lost: 'readmit'
-- (pending for a lease: the admission message is gone), 'regate' (every member ended and no
-- final agent was admitted: the chord body is gone, or the run was cancelled) and 'refinish'
-- (the final agent stored its output but the run did not end), and 'requeue' (members wait as
-- queued in a quiet run: their messages may have been taken by a worker that went away). Each
-- is claimed by bumping last_change_ms, so one watchdog acts per lease period.
-- Returns {state, cancel_reason, republish, abandon, expire, unstarted_from, unstarted_to,
-- action, denied (member, reason) pairs, sweep_at}.
local lease_ms, node = tonumber(ARGV[1]), ARGV[2]
-- One read of the run's fields: most runs are idle, and a sweep of one should cost little.
local fields = redis.call('HMGET', K_RUN, 'state', 'deadline_ms', 'cancel', 'last_change_ms', 'id')
local state = fields[1]
if not state then return {'missing', '', {}, {}, {}, 0, 0, '', {}, ''} end
if state ~= 'running' and state ~= 'pending' then return {state, '', {}, {}, {}, 0, 0, '', {}, ''} end
local now = now_ms()
local deadline, cancel, run_id = tonumber(fields[2]), fields[3] or '', fields[5]
local sweep_at = ''
if deadline and cancel == '' then
    if now > deadline then
        cancel = 'deadline exceeded'
        redis.call('HSET', K_RUN, 'cancel', cancel)
        redis.call('PUBLISH', ARGV[3], run_id .. '\n' .. cancel)
    elseif deadline + 1 < now + tonumber(ARGV[4]) then
        sweep_at = deadline + 1
    end
end
local quiet = now - (tonumber(fields[4]) or 0) > lease_ms
local republish, abandon, expire = {}, {}, {}
if state == 'pending' then
    if quiet or cancel ~= '' then
        redis.call('HSET', K_RUN, 'last_change_ms', now)
        return {state, cancel, republish, abandon, expire, 0, 0, 'readmit', {}, sweep_at}
    end
    return {state, cancel, republish, abandon, expire, 0, 0, '', {}, sweep_at}
end
local function hold(member, holder, into)
    redis.call('HSET', K_HOLDERS, member, holder)
    redis.call('ZADD', K_LEASES, now + lease_ms, member)
    table.insert(into, member)
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now)) do
    local holder = redis.call('HGET', K_HOLDERS, member) or ''
    if holder ~= '' and not is_placeholder(holder) and not is_ending(holder) then
        budget_charge_orphans(holder)
    end
    local limit = num(K_DEADLINES, member)
    if cancel ~= '' or holder == 'x:cancelled' then
        hold(member, 'x:cancelled', abandon)
    elseif holder == 'x:timeout' or (limit and limit <= now) then
        hold(member, 'x:timeout', expire)
    else
        hold(member, 'a:' .. node, republish)
    end
end
local unstarted_from, unstarted_to = 0, 0
if cancel ~= '' then
    -- Nothing not yet running will run: queued and prefetched members end now (the caller
    -- revokes their messages), members never published are ended in bulk by the caller.
    for _, member in ipairs(redis.call('ZRANGE', K_LEASES, 0, -1)) do
        local holder = redis.call('HGET', K_HOLDERS, member)
        if not holder or is_placeholder(holder) then hold(member, 'x:cancelled', abandon) end
    end
    unstarted_from = tonumber(redis.call('HGET', K_RUN, 'next'))
    unstarted_to = tonumber(redis.call('HGET', K_RUN, 'total'))
end
local denied = {}
if quiet then denied = redis.call('HGETALL', K_DENIED) end
local action = ''
if redis.call('ZCARD', K_LEASES) == 0 and #abandon == 0 and unstarted_from >= unstarted_to
    and #denied == 0 then
    local total = tonumber(redis.call('HGET', K_RUN, 'total'))
    local ready = quiet or (cancel ~= '' and now - (num(K_RUN, 'regated_ms') or 0) > lease_ms)
    if ready and redis.call('HEXISTS', K_OUTPUTS, 'final') == 1 then
        action = 'refinish'
    elseif ready and ended_members() >= total then
        action = 'regate'
    end
    if action ~= '' then redis.call('HSET', K_RUN, 'last_change_ms', now, 'regated_ms', now) end
end
-- Members confirmed as queued in a run quiet for a lease: the caller publishes them again if
-- the queue holds no message (a worker took theirs and went away before it noted the
-- reception). Claimed like the other actions, so it is looked at once per lease period.
if action == '' and quiet and cancel == '' and #republish == 0
    and redis.call('ZCOUNT', K_LEASES, QUEUED, QUEUED) > 0 then
    action = 'requeue'
    redis.call('HSET', K_RUN, 'last_change_ms', now)
end
return {state, cancel, republish, abandon, expire, unstarted_from, unstarted_to, action, denied,
    sweep_at}
