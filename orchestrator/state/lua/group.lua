-- Concurrency groups (prepended to run scripts after window.lua). The runs that name a group
-- share its limit: a member of any of them holds one of the group's slots exactly while it is
-- in flight in its run (in its run's leases), and the slots that free go round-robin to the
-- group's runs that have members waiting. A script of a run in a group declares, after the
-- run's own keys, the group's keys (orchestrator/state/keys.py GroupKeys, in the order of its
-- GROUP_PARTS, whose offsets the loader generates as it does the run's key names):
--   limits    sorted set: worker hostname -> the limit that worker declares
--   live      sorted set: the same hostnames -> when their declaration lapses (presence, ms)
--   inflight  set: 'run_id:member' of each member in flight
--   rotation  list: the ids of the runs waiting for slots, the next turn first
--   repaired  present for a lease after a sweep checked the group's slots
-- and then the keys of SHARED_RUN_PARTS (run hash, leases, holders, budget, denied) of each of
-- the group's other runs that the caller read in the rotation (and, for a repair, in
-- inflight) just before. The group's keys and all its runs' keys carry the group's hash tag
-- (one shard of a Cluster). Should a run have joined since that read, the script stops before
-- writing anything with a 'STALE' error, and the caller reads again and retries
-- (check_declared).
local GROUP_FIRST = RUN_KEY_COUNT + 1
local OTHERS_FIRST = GROUP_FIRST + GROUP_KEY_COUNT

local function group_key(group, part)
    local key = KEYS[GROUP_FIRST + GROUP_PARTS[part]]
    if not key then return error('the keys of group ' .. group .. ' were not declared') end
    return key
end

-- The keys of the runs this call declared, by run id (this run's own among them), each a
-- table part -> key of the parts of SHARED_RUN_PARTS (the run's hash first).
local DECLARED = {[RUN_ID] = SHARED_RUN_KEYS}
for first = OTHERS_FIRST, #KEYS, #SHARED_RUN_PARTS do
    local keys = {}
    for i, part in ipairs(SHARED_RUN_PARTS) do keys[part] = KEYS[first + i - 1] end
    DECLARED[string.match(keys.run, '}([^:}]*)$')] = keys
end

-- KEYS[1]'s run's group, or nil.
local function run_group()
    return redis.call('HGET', K_RUN, 'group') or nil
end

-- Stop, before any write, when a run this script may reach in the group was not declared:
-- one in the rotation, and for a repair (with_inflight) one with a member in flight.
local function check_declared(group, with_inflight)
    local ids = redis.call('LRANGE', group_key(group, 'rotation'), 0, -1)
    if with_inflight then
        for _, slot in ipairs(redis.call('SMEMBERS', group_key(group, 'inflight'))) do
            table.insert(ids, string.match(slot, '^([^:]*):'))
        end
    end
    for _, run_id in ipairs(ids) do
        if not DECLARED[run_id] then
            return error({err = 'STALE run ' .. run_id .. ' of the group was not declared'})
        end
    end
end

-- The group's limit: the lowest a live worker declares; when no declaring worker is live,
-- the lowest ever declared (admission goes on while workers come and go); nil when no worker
-- ever declared the group, which then admits nothing.
local function group_limit(group, now)
    local declared = redis.call('ZRANGE', group_key(group, 'limits'), 0, -1, 'WITHSCORES')
    local live = group_key(group, 'live')
    for i = 1, #declared, 2 do
        local expiry = redis.call('ZSCORE', live, declared[i])
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
        local keys = DECLARED[run_id]
        local admitted, denied, stop = admit_within_window(keys, node, lease_ms, now, 1)
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

-- The next admission for KEYS[1]'s run, whose group is `group` (nil: none): what its own
-- window lets in (window.lua), or its group's round-robin fill, which may admit members of the
-- group's other runs. Here rather than in window.lua, which comes first in the prelude: it
-- chooses between the two. The caller, worker NODE, publishes every admitted member. Returns the run's admitted indices and
-- (denied index, reason) pairs, and the other runs' shares (see group_fill).
local function admit_next(node, lease_ms, group)
    if group then return group_fill(group, node, lease_ms) end
    local admitted, denied = admit_within_window(DECLARED[RUN_ID], node, lease_ms, now_ms(), nil)
    return admitted, denied, {}
end
