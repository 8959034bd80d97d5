-- The concurrency window of a run (prepended to run scripts after common.lua and budget.lua).

-- The window: admit members in item order while fewer than max_concurrent are in flight. The
-- caller, worker NODE, publishes the admitted members. Returns the admitted indices and a flat
-- list of (denied index, reason).
local function fill_window(node, lease_ms)
    local admitted, denied = {}, {}
    if not is_active() then return admitted, denied end
    local now = now_ms()
    local total = tonumber(redis.call('HGET', K_RUN, 'total'))
    local cap = tonumber(redis.call('HGET', K_RUN, 'max_concurrent'))
    local nxt = tonumber(redis.call('HGET', K_RUN, 'next'))
    while nxt < total do
        local inflight = redis.call('ZCARD', K_LEASES)
        if inflight >= cap then break end
        local verdict, reason = budget_admit(inflight, 'floor')
        if verdict == 'wait' then break end
        if verdict == 'ok' then
            redis.call('ZADD', K_LEASES, now + lease_ms, nxt)
            redis.call('HSET', K_HOLDERS, nxt, 'a:' .. node)
            table.insert(admitted, nxt)
        else
            -- Kept until the member is ended, so that an ending lost with a reply is redone.
            redis.call('HSET', K_DENIED, nxt, reason)
            table.insert(denied, nxt)
            table.insert(denied, reason)
        end
        nxt = nxt + 1
    end
    redis.call('HSET', K_RUN, 'next', nxt)
    return admitted, denied
end
