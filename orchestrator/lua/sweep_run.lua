-- The watchdog's look at one run. ARGV: lease_ms.
-- Applies the deadline; members whose lease expired are republished (their lease renewed
-- here, so one watchdog wins) or, in a cancelled run, abandoned together with every member
-- never published. Returns {state, cancel_reason, republish, abandon}.
local lease_ms = tonumber(ARGV[1])
local now = now_ms()
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'running' and state ~= 'pending' then return {state or 'missing', '', {}, {}} end
local deadline = num(K_RUN, 'deadline_ms')
if deadline and now > deadline and redis.call('HEXISTS', K_RUN, 'cancel') == 0 then
    redis.call('HSET', K_RUN, 'cancel', 'deadline exceeded')
end
local cancel = redis.call('HGET', K_RUN, 'cancel') or ''
local republish, abandon = {}, {}
if state == 'pending' then return {state, cancel, republish, abandon} end
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
if cancel ~= '' then
    local total = tonumber(redis.call('HGET', K_RUN, 'total'))
    local nxt = tonumber(redis.call('HGET', K_RUN, 'next'))
    for i = nxt, total - 1 do table.insert(abandon, tostring(i)) end
    redis.call('HSET', K_RUN, 'next', total)
end
return {state, cancel, republish, abandon}
