-- Reserve the upper bound of one model call of a running member (see budget.lua).
-- ARGV: member, token (the execution's lease token), call id, tokens, nusd.
-- Returns {'ok'}, {'wait'} (try again once calls in flight settle), {'deny', reason} or
-- {'lost'} (the execution no longer holds the member: it must make no call).
if not run_exists() then return {'lost'} end
if redis.call('HGET', K_HOLDERS, ARGV[1]) ~= ARGV[2] then return {'lost'} end
local verdict, reason = budget_reserve_call(ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return {verdict, reason}
