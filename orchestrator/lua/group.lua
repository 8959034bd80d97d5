-- Concurrency groups (prepended to run scripts after window.lua). The runs that name a group
-- share its limit: a member of any of them holds one of the group's slots exactly while it is
-- in flight in its run (in its run's leases), and the slots that free go round-robin to the
-- group's runs that have members waiting. The group's keys (orchestrator/keys.py GroupKeys):
--   ao:group:NAME:limits    sorted set: worker hostname -> the limit that worker declares
--   ao:group:NAME:inflight  set: 'run_id:member' of each member in flight
--   ao:group:NAME:rotation  list: the ids of the runs waiting for slots, the next turn first
--   ao:group:NAME:repaired  present for a lease after a sweep checked the group's slots
local WORKERS = 'ao:workers' -- orchestrator/keys.py WORKERS: hostname -> presence expiry

local function group_key(group, part)
    return 'ao:group:' .. group .. ':' .. part
end

-- KEYS[1]'s run's group, or nil.
local function run_group()
    return redis.call('HGET', K_RUN, 'group') or nil
end

-- The group's limit: the lowest a live worker declares; when no declaring worker is live,
-- the lowest ever declared (admission goes on while workers come and go); nil when no worker
-- ever declared the group, which then admits nothing.
local function group_limit(group, now)
    local declared = redis.call('ZRANGE', group_key(group, 'limits'), 0, -1, 'WITHSCORES')
    for i = 1, #declared, 2 do
        local expiry = redis.call('ZSCORE', WORKERS, declared[i])
        if expiry and tonumber(expiry) > now then return tonumber(declared[i + 1]) end
    end
    if #declared > 0 then return tonumber(declared[2]) end
    return nil
end

-- KEYS[1]'s run takes its turns in the group's rotation (once, however often it is started).
local function join_rotation(group)
    local rotation = group_key(group, 'rotation')
    if is_active() and not redis.call('LPOS', rotation, RUN_ID) then
        redis.call('RPUSH', rotation, RUN_ID)
    end
end

-- Member `member` of KEYS[1]'s run left its run's leases: its group slot is free.
local function release_slot(group, member)
    redis.call('SREM', group_key(group, 'inflight'), RUN_ID .. ':' .. member)
end

-- Fill the group's free slots round-robin: the run at the head of the rotation admits one
-- member (ending any the budget denies on the way) and goes to the back; a run whose own cap
-- is full, or whose budget waits, is passed over; a run with no member waiting, or no longer
-- running, leaves the rotation. Stops when the slots are taken or every run was passed over.
-- Returns KEYS[1]'s run's admitted indices and (denied index, reason) pairs, and the other
-- runs' shares as a flat list of (run id, admitted, denied).
local function group_fill(group, node, lease_ms)
    local now = now_ms()
    local shares, order = {}, {}
    local limit = group_limit(group, now)
    local inflight, rotation = group_key(group, 'inflight'), group_key(group, 'rotation')
    local free = limit and limit - redis.call('SCARD', inflight) or 0
    local turns = redis.call('LLEN', rotation)
    local passed = 0 -- turns in a row that admitted nothing
    while free > 0 and passed < turns do
        local run_id = redis.call('LINDEX', rotation, 0)
        local keys = run_keys(RUN_PREFIX .. run_id)
        local admitted, denied, stop = admit_run(keys, node, lease_ms, now, 1)
        for _, index in ipairs(admitted) do
            redis.call('SADD', inflight, run_id .. ':' .. index)
        end
        if #admitted > 0 or #denied > 0 then
            if not shares[run_id] then
                shares[run_id] = {{}, {}}
                table.insert(order, run_id)
            end
            for _, index in ipairs(admitted) do table.insert(shares[run_id][1], index) end
            for _, value in ipairs(denied) do table.insert(shares[run_id][2], value) end
        end
        if stop == 'done' or stop == 'inactive' then
            redis.call('LPOP', rotation)
            turns = turns - 1
        else
            redis.call('LMOVE', rotation, rotation, 'LEFT', 'RIGHT')
            if #admitted == 0 then passed = passed + 1 end
        end
        if #admitted > 0 then
            free = free - #admitted
            passed = 0
        end
    end
    local own, others = {{}, {}}, {}
    for _, run_id in ipairs(order) do
        if run_id == RUN_ID then
            own = shares[run_id]
        else
            table.insert(others, run_id)
            table.insert(others, shares[run_id][1])
            table.insert(others, shares[run_id][2])
        end
    end
    return own[1], own[2], others
end

-- Admission for KEYS[1]'s run, whose group is `group` (nil: none): its own window, or its
-- group's round-robin fill, which may admit members of the group's other runs. The caller,
-- worker NODE, publishes every admitted member. Returns the run's admitted indices and
-- (denied index, reason) pairs, and the other runs' shares (see group_fill).
local function fill_window(node, lease_ms, group)
    if group then return group_fill(group, node, lease_ms) end
    local admitted, denied = admit_run(run_keys(K_RUN), node, lease_ms, now_ms(), nil)
    return admitted, denied, {}
end
