-- A partial reducer of a map-reduce's tree reduce is about to run inside the final member's
-- execution. ARGV: part ('level.chunk'), token (the final member's lease token), start event.
-- Returns {'done', output} when the part was stored by an earlier execution (it is not run
-- again), {'lost'} when this execution no longer holds the final member (or the run is gone),
-- {'cancelled', reason}, {'denied', reason} when the budget admits no more agents, or {'run'}
-- with the start event emitted. A partial reducer is an agent of the run's budget, counted
-- once however many executions start it (a takeover runs an unfinished one again).
if not run_exists() then return {'lost'} end
local part, token = ARGV[1], ARGV[2]
if redis.call('HGET', K_HOLDERS, 'final') ~= token then return {'lost'} end
local output = redis.call('HGET', K_PARTIALS, part)
if output then return {'done', output} end
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
if redis.call('HEXISTS', K_PARTIALS, 'agent:' .. part) == 0 then
    local verdict, reason = budget_admit(0, 'final_floor')
    if verdict ~= 'ok' then return {'denied', reason} end
    redis.call('HSET', K_PARTIALS, 'agent:' .. part, '1')
end
emit(ARGV[3])
return {'run'}
