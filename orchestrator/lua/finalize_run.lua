-- The run ends once. ARGV: state, result_json, error, end_event_json, keep_s.
-- KEYS[9] is the run's done stream, KEYS[10] the set of active runs. Returns 1 when this call ended the run, 0 when it had
-- already ended.
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'running' and state ~= 'pending' then return 0 end
redis.call('HSET', K_RUN, 'state', ARGV[1], 'result', ARGV[2], 'error', ARGV[3], 'ended_ms', now_ms())
redis.call('SREM', KEYS[10], redis.call('HGET', K_RUN, 'id'))
emit(ARGV[4])
redis.call('XADD', KEYS[9], '*', 'state', ARGV[1])
for i = 1, 9 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
return 1
