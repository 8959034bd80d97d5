-- The reducer gate. ARGV: lease_ms, reduce_prompt.
-- Returns {'cancelled', reason}, {'denied', reason} or {'admitted'}. Safe to call again:
-- a reducer already admitted is not reserved twice.
local lease_ms = tonumber(ARGV[1])
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
if redis.call('HEXISTS', K_RESERVED, 'reduce') == 1 or redis.call('HEXISTS', K_OUTPUTS, 'reduce') == 1 then
    return {'admitted'}
end
local verdict, reason = budget_reserve('reduce', 0)
if verdict ~= 'ok' then return {'denied', reason} end
redis.call('HSET', K_RUN, 'reduce_prompt', ARGV[2])
redis.call('ZADD', K_LEASES, now_ms() + lease_ms, 'reduce')
return {'admitted'}
