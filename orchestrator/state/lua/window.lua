-- The concurrency window of a run (prepended to run scripts after common.lua and budget.lua).

-- Admit members of one run in item order while fewer than its max_concurrent are in flight
-- (its window) and its budget admits, at most `most` of them (nil: no bound). `keys`: the
-- run's keys by part (SHARED_RUN_PARTS: run, leases, holders, budget, denied; see DECLARED in
-- group.lua).
-- The caller, worker NODE, publishes the admitted members. Returns the admitted indices, a
-- flat list of (denied index, reason) and why it stopped: 'done' (no member waits), 'full'
-- (its own cap is reached, or its budget waits for the calls in flight), 'most' (it admitted
-- `most`) or 'inactive' (cancelled, ended or gone).
local function admit_within_window(keys, node, lease_ms, now, most)
    local admitted, denied = {}, {}
    if not is_active(keys.run) then return admitted, denied, 'inactive' end
    local fields = redis.call('HMGET', keys.run, 'total', 'max_concurrent', 'next')
    local total, cap, nxt = tonumber(fields[1]), tonumber(fields[2]), tonumber(fields[3])
    local stop = 'done'
    while nxt < total do
        if most and #admitted >= most then
            stop = 'most'
            break
        end
        local inflight = redis.call('ZCARD', keys.leases)
        if inflight >= cap then
            stop = 'full'
            break
        end
        local verdict, reason = budget_admit(inflight, 'floor', keys.budget)
        if verdict == 'wait' then
            stop = 'full'
            break
        end
        if verdict == 'ok' then
            redis.call('ZADD', keys.leases, now + lease_ms, nxt)
            redis.call('HSET', keys.holders, nxt, 'a:' .. node)
            table.insert(admitted, nxt)
        else
            -- Kept until the member is ended, so that an ending lost with a reply is redone.
            redis.call('HSET', keys.denied, nxt, reason)
            table.insert(denied, nxt)
            table.insert(denied, reason)
        end
        nxt = nxt + 1
    end
    redis.call('HSET', keys.run, 'next', nxt)
    return admitted, denied, stop
end
