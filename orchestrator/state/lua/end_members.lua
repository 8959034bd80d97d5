-- End members that will never run, in bulk (a cancelled run's queued and unpublished members).
-- ARGV: outcome, advance_to ('' or the index past the last of a never-published range, which
-- then counts as handled), node, lease_ms, then (member, output_json, event_json) triples. A
-- member already ended keeps its output; one that an execution holds is left to it. The members are not counted by the chord: a
-- cancelled run ends by its final step once drained. The group slots they free go to the
-- other runs of the run's concurrency group, whose admitted members worker NODE publishes.
-- Returns {ended, drained, other runs' shares} (drained: see common.lua; shares: group.lua).
if not run_exists() then return {0, 0, {}} end
local outcome, ended = ARGV[1], 0
local group = run_group()
if group then check_declared(group, false) end
for i = 5, #ARGV, 3 do
    local member = ARGV[i]
    -- A member an execution claimed meanwhile is that execution's to end (it finds the cancel).
    local holder = redis.call('HGET', K_HOLDERS, member)
    local running = holder and not is_placeholder(holder) and not is_ending(holder)
    if not running and redis.call('HSETNX', K_OUTPUTS, member, ARGV[i + 1]) == 1 then
        ended = ended + 1
        redis.call('ZREM', K_LEASES, member)
        if group and member ~= 'final' then release_slot(group, member) end
        redis.call('HDEL', K_HOLDERS, member)
        redis.call('HDEL', K_DEADLINES, member)
        emit(ARGV[i + 2])
    end
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) > tonumber(redis.call('HGET', K_RUN, 'next')) then
    redis.call('HSET', K_RUN, 'next', ARGV[2])
end
if ended > 0 then
    redis.call('HINCRBY', K_RUN, 'n_' .. outcome, ended)
    redis.call('HSET', K_RUN, 'last_change_ms', now_ms())
end
local is_drained = 0
if drained() and redis.call('HEXISTS', K_OUTPUTS, 'final') == 0 then is_drained = 1 end
local others = {}
if group and ended > 0 then
    local _
    _, _, others = admit_next(ARGV[3], tonumber(ARGV[4]), group)
end
return {ended, is_drained, others}
