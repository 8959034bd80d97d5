-- The watchdog's repair of the concurrency group of KEYS[1]'s run, at most once per lease
-- across all the group's runs. A member holds a group slot exactly while it is in its run's
-- leases, and every script that changes the one changes the other; but a run deleted, or
-- expired, with members in flight leaves their slots behind, with nothing left to release
-- them. Such slots are freed, and the group's free slots filled (see group.lua group_fill):
-- worker NODE publishes what is admitted. ARGV: node, lease_ms.
-- Returns {freed, admitted, denied, other runs' shares}.
local group = run_group()
if not group or not run_exists() then return {0, {}, {}, {}} end
local lease_ms = tonumber(ARGV[2])
check_declared(group, true)
if not redis.call('SET', group_key(group, 'repaired'), '1', 'NX', 'PX', lease_ms) then
    return {0, {}, {}, {}}
end
local inflight, freed = group_key(group, 'inflight'), 0
for _, slot in ipairs(redis.call('SMEMBERS', inflight)) do
    local run_id, member = string.match(slot, '^([^:]*):(.*)$')
    if not redis.call('ZSCORE', DECLARED[run_id].leases, member) then
        redis.call('SREM', inflight, slot)
        freed = freed + 1
    end
end
local admitted, denied, others = admit_next(ARGV[1], lease_ms, group)
return {freed, admitted, denied, others}
