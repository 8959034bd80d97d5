-- A member ended: store its output (first write wins), settle its budget, free its slot and
-- admit the next members. ARGV: member, lease_ms, output_json, outcome, tokens, cost,
-- messages_json and record_json ('' for none), then the events to emit in order (the last one
-- is AgentEnd).
-- Returns {1, admitted, denied} or {0, stored_output} for a duplicate.
local member = ARGV[1]
local lease_ms = tonumber(ARGV[2])
if redis.call('HSETNX', K_OUTPUTS, member, ARGV[3]) == 0 then
    return {0, redis.call('HGET', K_OUTPUTS, member)}
end
if member ~= 'final' then
    redis.call('HINCRBY', K_RUN, 'n_' .. ARGV[4], 1)
end
if ARGV[7] ~= '' then
    redis.call('HSET', K_MESSAGES, member, ARGV[7])
end
if ARGV[8] ~= '' then
    redis.call('HSET', K_RECORDS, member, ARGV[8])
end
budget_settle(member, tonumber(ARGV[5]), tonumber(ARGV[6]))
redis.call('HSET', K_RUN, 'last_change_ms', now_ms())
redis.call('ZREM', K_LEASES, member)
redis.call('HDEL', K_HOLDERS, member)
redis.call('HDEL', K_CHECKPOINTS, member)
for i = 9, #ARGV do emit(ARGV[i]) end
local admitted, denied = fill_window(lease_ms)
return {1, admitted, denied}
