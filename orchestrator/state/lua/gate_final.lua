-- The gate of a run's final step (a reducer, a judge). ARGV: node, final_prompt, lease_ms,
-- agent ('1': the step is an agent of the budget; '0': a reducer function, which makes no model
-- call and is no agent, so only a cancel keeps it from running).
-- final_prompt is the judge's prompt, or '' for a map-reduce's reducer, which builds its own
-- prompts from the stored outputs when it runs (a big run's would be megabytes here).
-- Returns {'cancelled', reason}, {'denied', reason}, {'gone'} (the run no longer exists or has
-- ended) or {'admitted'}. Safe to call again: a final agent already admitted is not counted
-- twice. Worker NODE publishes it, under a lease until it confirms (see common.lua).
if redis.call('HGET', K_RUN, 'state') ~= 'running' then return {'gone'} end
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
if redis.call('HEXISTS', K_RUN, 'final_prompt') == 1 or redis.call('HEXISTS', K_OUTPUTS, 'final') == 1 then
    return {'admitted'}
end
if ARGV[4] ~= '0' then
    local verdict, reason = budget_admit(0, 'final_floor')
    if verdict ~= 'ok' then return {'denied', reason} end
end
redis.call('HSET', K_RUN, 'final_prompt', ARGV[2])
redis.call('ZADD', K_LEASES, now_ms() + tonumber(ARGV[3]), 'final')
redis.call('HSET', K_HOLDERS, 'final', 'a:' .. ARGV[1])
return {'admitted'}
