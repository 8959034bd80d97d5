-- The gate of a run's final agent (a reducer, a judge). ARGV: node, final_prompt.
-- Returns {'cancelled', reason}, {'denied', reason}, {'gone'} or {'admitted'}. Safe to call
-- again: a final agent already admitted is not reserved twice. Worker NODE publishes it.
if not run_exists() then return {'gone'} end
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
if redis.call('HEXISTS', K_RESERVED, 'final') == 1 or redis.call('HEXISTS', K_OUTPUTS, 'final') == 1 then
    return {'admitted'}
end
local verdict, reason = budget_reserve('final', 0)
if verdict ~= 'ok' then return {'denied', reason} end
redis.call('HSET', K_RUN, 'final_prompt', ARGV[2])
redis.call('ZADD', K_LEASES, QUEUED, 'final')
redis.call('HSET', K_HOLDERS, 'final', 'a:' .. ARGV[1])
return {'admitted'}
