-- Shared by every run script (the loader prepends this file). KEYS[1] is the run's hash; its
-- other keys are named after it (see orchestrator/keys.py RunKeys), so a call sends one key
-- name instead of ten: encoding key names was most of a call's client-side cost.
local K_RUN = KEYS[1]
local K_ITEMS, K_LEASES, K_HOLDERS = K_RUN .. ':items', K_RUN .. ':leases', K_RUN .. ':holders'
local K_OUTPUTS, K_BUDGET = K_RUN .. ':outputs', K_RUN .. ':budget'
local K_RESERVED = K_RUN .. ':reserved'
local K_EVENTS, K_DONE, K_MESSAGES = K_RUN .. ':events', K_RUN .. ':done', K_RUN .. ':messages'
local K_CHECKPOINTS, K_RECORDS = K_RUN .. ':checkpoints', K_RUN .. ':records'
local K_DEADLINES, K_DENIED = K_RUN .. ':deadlines', K_RUN .. ':denied'
local K_DISCARDED = K_RUN .. ':discarded'
local RUN_KEYS = {K_RUN, K_ITEMS, K_LEASES, K_HOLDERS, K_OUTPUTS, K_BUDGET, K_RESERVED, K_EVENTS,
    K_DONE, K_MESSAGES, K_CHECKPOINTS, K_RECORDS, K_DEADLINES, K_DENIED, K_DISCARDED}

-- A member in flight is in K_LEASES with a holder in K_HOLDERS:
--   'a:NODE'  admitted by worker NODE, to be published: a lease, so that a publish lost with
--             NODE, with a reply or with the broker is redone when it expires. Once NODE has
--             published it, its score becomes QUEUED: a queue may be long, and waiting is not
--             a sign of loss, so a published member never expires while it waits.
--   'r:NODE'  its message was taken (prefetched) by worker NODE, which renews the lease.
--   a token   an execution claimed it and renews the lease while it runs.
--   'x:WHY'   it is being ended without running ('x:cancelled', 'x:timeout'); should the ending
--             be lost, the lease expires and the watchdog ends it again.
-- A lease that expires (its worker died or hung) is taken over by the watchdog.
local QUEUED = 4000000000000000

local function is_placeholder(holder)
    local prefix = string.sub(holder, 1, 2)
    return prefix == 'a:' or prefix == 'r:'
end

local function is_ending(holder)
    return string.sub(holder, 1, 2) == 'x:'
end

-- A run whose hash is gone (flushed, lost with a Redis that kept nothing) is never re-created
-- by a late writer: every script that writes starts with this check.
local function run_exists()
    return redis.call('EXISTS', K_RUN) == 1
end

-- Redis's clock, so that workers on machines with skewed clocks agree on lease expiry.
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(key, field)
    local v = redis.call('HGET', key, field)
    if v then return tonumber(v) end
    return nil
end

local function emit(event_json)
    if event_json and event_json ~= '' then
        local maxlen = redis.call('HGET', K_RUN, 'events_maxlen') or '10000'
        redis.call('XADD', K_EVENTS, 'MAXLEN', '~', maxlen, '*', 'e', event_json)
    end
end

local function ended_members()
    local ended = 0
    for _, outcome in ipairs({'ok', 'error', 'skipped', 'cancelled'}) do
        ended = ended + (num(K_RUN, 'n_' .. outcome) or 0)
    end
    return ended
end

-- A cancelled run whose members have all ended, with nothing in flight: its final step (the
-- chord body) can run now; the members ended by a cancel are not counted by the chord.
local function drained()
    return redis.call('HEXISTS', K_RUN, 'cancel') == 1 and redis.call('ZCARD', K_LEASES) == 0
        and ended_members() >= tonumber(redis.call('HGET', K_RUN, 'total'))
end

local function is_active()
    return redis.call('HGET', K_RUN, 'state') == 'running'
        and redis.call('HEXISTS', K_RUN, 'cancel') == 0
end

-- Admit one agent against the budget, or say why not. 'wait' means the token or cost limit
-- would be passed by the reservations of agents still running: admission pauses until they
-- settle instead of denying an agent that may still fit.
local function budget_reserve(member, inflight)
    local max_agents = num(K_BUDGET, 'max_agents')
    local agents = num(K_BUDGET, 'agents') or 0
    if max_agents and agents >= max_agents then
        return 'deny', 'budget: max_agents (' .. max_agents .. ') reached'
    end
    local settled = num(K_BUDGET, 'settled') or 0
    local tokens = num(K_BUDGET, 'tokens') or 0
    local cost = num(K_BUDGET, 'cost') or 0
    local est_tokens, est_cost = 0, 0
    if settled > 0 then
        est_tokens = tokens / settled
        est_cost = cost / settled
    end
    local max_tokens = num(K_BUDGET, 'max_tokens')
    if max_tokens then
        if tokens >= max_tokens then
            return 'deny', 'budget: max_tokens (' .. max_tokens .. ') reached, ' .. tokens .. ' used'
        end
        if inflight > 0 and tokens + (num(K_BUDGET, 'res_tokens') or 0) + est_tokens > max_tokens then
            return 'wait', ''
        end
    end
    local max_cost = num(K_BUDGET, 'max_cost')
    if max_cost then
        if cost >= max_cost then
            return 'deny', 'budget: max_cost_usd (' .. max_cost .. ') reached, ' .. cost .. ' spent'
        end
        if inflight > 0 and cost + (num(K_BUDGET, 'res_cost') or 0) + est_cost > max_cost then
            return 'wait', ''
        end
    end
    redis.call('HINCRBY', K_BUDGET, 'agents', 1)
    redis.call('HINCRBYFLOAT', K_BUDGET, 'res_tokens', est_tokens)
    redis.call('HINCRBYFLOAT', K_BUDGET, 'res_cost', est_cost)
    redis.call('HSET', K_RESERVED, member, est_tokens .. ' ' .. est_cost)
    return 'ok', ''
end

-- Replace a member's reservation with what it really used.
local function budget_settle(member, tokens, cost)
    local reserved = redis.call('HGET', K_RESERVED, member)
    if not reserved then return end
    local res_tokens, res_cost = string.match(reserved, '^(%S+) (%S+)$')
    redis.call('HINCRBYFLOAT', K_BUDGET, 'res_tokens', -tonumber(res_tokens))
    redis.call('HINCRBYFLOAT', K_BUDGET, 'res_cost', -tonumber(res_cost))
    redis.call('HDEL', K_RESERVED, member)
    if tokens > 0 or cost > 0 then
        redis.call('HINCRBY', K_BUDGET, 'settled', 1)
        redis.call('HINCRBY', K_BUDGET, 'tokens', tokens)
        redis.call('HINCRBYFLOAT', K_BUDGET, 'cost', cost)
    end
end

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
        local verdict, reason = budget_reserve(tostring(nxt), inflight)
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
