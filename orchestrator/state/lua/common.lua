-- Shared by every run script: the loader prepends the names of the run's keys (generated
-- from orchestrator/state/keys.py RUN_PARTS: K_RUN, K_ITEMS, ..., RUN_KEYS, RUN_KEY_COUNT), then
-- this file, budget.lua, window.lua and group.lua. KEYS[1..RUN_KEY_COUNT] are the run's keys,
-- the hash first: every key a script touches is declared, and all of them carry the run's hash
-- tag, so a run's scripts run on the one shard of a Redis Cluster that holds the run. A run in
-- a concurrency group declares its group's keys and its group's other runs' keys after them
-- (see group.lua). A script whose call can end in several ways replies the outcome's name
-- first; a yes or no is 1 or 0 (orchestrator/state/store/replies.py).

-- The run's id: its hash key is 'ao:run:{TAG}' and the id.
local RUN_ID = string.match(K_RUN, '}([^:}]*)$')

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

-- An ended run of this many members or more keeps one event for every EVENTS_KEPT_PER of
-- them once its readers had time to catch up (trim_events.lua): at most 1 KB per member.
local EVENTS_TRIM_FROM = 1000
local EVENTS_KEPT_PER = 4

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

-- Flags a run past its deadline and announces it on the cancel channel, as the sweep due at it
-- does: called by a completion before it admits, since one that waited for room in a full
-- Redis may be the first write after the deadline (the sweep could not write either).
local function flag_deadline(cancel_channel)
    local fields = redis.call('HMGET', K_RUN, 'deadline_ms', 'cancel')
    local deadline = tonumber(fields[1])
    if deadline and (fields[2] or '') == '' and now_ms() > deadline then
        redis.call('HSET', K_RUN, 'cancel', 'deadline exceeded')
        redis.call('PUBLISH', cancel_channel, RUN_ID .. '\n' .. 'deadline exceeded')
    end
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

-- Whether the run (KEYS[1]'s, or the one of hash key run_key) is running and not cancelled.
local function is_active(run_key)
    run_key = run_key or K_RUN
    return redis.call('HGET', run_key, 'state') == 'running'
        and redis.call('HEXISTS', run_key, 'cancel') == 0
end
