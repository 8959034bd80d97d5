-- The watchdog's look at one run. ARGV: lease_ms.
-- Applies the deadline; members whose lease expired are republished (their lease renewed
-- here, so one watchdog wins) or, in a cancelled run, abandoned together with every member
-- never published. It also finds the steps between members that a dead process may have lost:
-- 'readmit' (pending for a lease: the admission message is gone), 'regate' (every member ended
-- a lease ago and no final agent was admitted: the chord body is gone) and 'refinish' (the
-- final agent stored its output a lease ago but the run did not end). Each is claimed by bumping
-- last_change_ms, so one watchdog acts per lease period.
-- Returns {state, cancel_reason, republish, abandon, action}.
local lease_ms = tonumber(ARGV[1])
local now = now_ms()
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'running' and state ~= 'pending' then return {state or 'missing', '', {}, {}, ''} end
local deadline = num(K_RUN, 'deadline_ms')
if deadline and now > deadline and redis.call('HEXISTS', K_RUN, 'cancel') == 0 then
    redis.call('HSET', K_RUN, 'cancel', 'deadline exceeded')
end
local cancel = redis.call('HGET', K_RUN, 'cancel') or ''
local republish, abandon = {}, {}
local quiet = now - (num(K_RUN, 'last_change_ms') or 0) > lease_ms
if state == 'pending' then
    if quiet then
        redis.call('HSET', K_RUN, 'last_change_ms', now)
        return {state, cancel, republish, abandon, 'readmit'}
    end
    return {state, cancel, republish, abandon, ''}
end
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now)
for _, member in ipairs(expired) do
    redis.call('HDEL', K_HOLDERS, member)
    if cancel ~= '' then
        redis.call('ZREM', K_LEASES, member)
        table.insert(abandon, member)
    else
        redis.call('ZADD', K_LEASES, now + lease_ms, member)
        table.insert(republish, member)
    end
end
local total = tonumber(redis.call('HGET', K_RUN, 'total'))
if cancel ~= '' then
    local nxt = tonumber(redis.call('HGET', K_RUN, 'next'))
    for i = nxt, total - 1 do table.insert(abandon, tostring(i)) end
    redis.call('HSET', K_RUN, 'next', total)
end
local action = ''
if quiet and #abandon == 0 and redis.call('ZCARD', K_LEASES) == 0 then
    local ended = 0
    for _, outcome in ipairs({'ok', 'error', 'skipped', 'cancelled'}) do
        ended = ended + (num(K_RUN, 'n_' .. outcome) or 0)
    end
    if redis.call('HEXISTS', K_OUTPUTS, 'final') == 1 then
        action = 'refinish'
    elseif ended >= total then
        action = 'regate'
    end
    if action ~= '' then redis.call('HSET', K_RUN, 'last_change_ms', now) end
end
return {state, cancel, republish, abandon, action}
