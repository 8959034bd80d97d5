-- Admission: pending -> running, then fill the first window, which worker NODE publishes. A
-- run in a concurrency group joins its rotation and waits its turn when the group is full.
-- ARGV: node, lease_ms. Returns {admitted, denied, cancel_reason or '', other runs' shares}
-- (see group.lua group_fill).
if not run_exists() then return {{}, {}, '', {}} end
local group = run_group()
if group then check_declared(group, false) end
if redis.call('HGET', K_RUN, 'state') == 'pending' then
    redis.call('HSET', K_RUN, 'state', 'running')
end
if group then join_rotation(group) end
local admitted, denied, others = admit_next(ARGV[1], tonumber(ARGV[2]), group)
return {admitted, denied, redis.call('HGET', K_RUN, 'cancel') or '', others}
