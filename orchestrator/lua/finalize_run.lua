-- The run ends once. ARGV: state, result_json, error, end_event_json, keep_s.
-- KEYS[9] is the set of active runs. Returns 1 when this call ended the run, 0 when it had
-- already ended.
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'running' and state ~= 'pending' then return 0 end
redis.call('HSET', K_RUN, 'state', ARGV[1], 'result', ARGV[2], 'error', ARGV[3], 'ended_ms', now_ms())
redis.call('SREM', KEYS[9], redis.call('HGET', K_RUN, 'id'))
emit(ARGV[4])
for i = 1, 8 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5])) end
return 1
