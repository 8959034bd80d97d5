-- The run ends once. KEYS[2] is the sorted set of active runs.
-- ARGV: state, result_json, error, keep_s, then events to emit before RunEnd, RunEnd last.
-- Returns 1 when this call ended the run, 0 when it had already ended.
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'running' and state ~= 'pending' then return 0 end
redis.call('HSET', K_RUN, 'state', ARGV[1], 'result', ARGV[2], 'error', ARGV[3], 'ended_ms', now_ms())
redis.call('ZREM', KEYS[2], redis.call('HGET', K_RUN, 'id'))
for i = 5, #ARGV do emit(ARGV[i]) end
redis.call('XADD', K_DONE, '*', 'state', ARGV[1])
for _, key in ipairs(RUN_KEYS) do redis.call('EXPIRE', key, tonumber(ARGV[4])) end
return 1
