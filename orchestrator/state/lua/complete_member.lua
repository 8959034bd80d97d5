-- A member ended: store its output (first write wins), free its slot and admit the next
-- members, which the caller (worker NODE) publishes. Its usage is already in the budget: each
-- model call settles its own (budget.lua).
-- ARGV: member, node, token ('' for a member that never ran), lease_ms, output_json, outcome,
-- messages_json and record_json ('' for none), the execution's budget attempt ('TOKEN/ATTEMPT',
-- '' for none) and how many calls it made, the cancel channel, then the events to emit in
-- order (the last one is AgentEnd). Calls of the attempt still reserved (their settle was lost)
-- are charged.
-- Returns, the outcome first (orchestrator/state/store/replies.py): {'stored', admitted,
-- denied, drained, other runs' shares} (the shares: members of the other runs of its
-- concurrency group that its freed slot let in, see group.lua); {'duplicate', stored_output}
-- when a member that never ran was already stored; {'discarded'} when the execution does not
-- hold the lease (it was taken over, or the member was ended without it): its result is
-- discarded (its calls counted when they settled); {'gone'} when the run no longer exists.
if not run_exists() then return {'gone'} end
local group = run_group()
if group then check_declared(group, false) end
local member, node, token = ARGV[1], ARGV[2], ARGV[3]
if token ~= '' and redis.call('HGET', K_HOLDERS, member) ~= token then return {'discarded'} end
if ARGV[9] ~= '' then budget_close_attempt(ARGV[9], tonumber(ARGV[10])) end
if redis.call('HSETNX', K_OUTPUTS, member, ARGV[5]) == 0 then
    return {'duplicate', redis.call('HGET', K_OUTPUTS, member)}
end
if member ~= 'final' then
    redis.call('HINCRBY', K_RUN, 'n_' .. ARGV[6], 1)
end
if ARGV[7] ~= '' then
    redis.call('HSET', K_MESSAGES, member, ARGV[7])
end
if ARGV[8] ~= '' then
    redis.call('HSET', K_RECORDS, member, ARGV[8])
end
redis.call('HSET', K_RUN, 'last_change_ms', now_ms())
redis.call('ZREM', K_LEASES, member)
if group and member ~= 'final' then release_slot(group, member) end
-- An execution's token stays as the holder: a retried call (its reply lost with a connection)
-- then finds its own output stored instead of a lost lease.
if token == '' then redis.call('HDEL', K_HOLDERS, member) end
redis.call('HDEL', K_CHECKPOINTS, member)
redis.call('HDEL', K_DEADLINES, member)
redis.call('HDEL', K_DENIED, member)
for i = 12, #ARGV do emit(ARGV[i]) end
flag_deadline(ARGV[11])
local admitted, denied, others = admit_next(node, tonumber(ARGV[4]), group)
local is_drained = 0
if member ~= 'final' and drained() and redis.call('HEXISTS', K_OUTPUTS, 'final') == 0 then
    is_drained = 1
end
return {'stored', admitted, denied, is_drained, others}
