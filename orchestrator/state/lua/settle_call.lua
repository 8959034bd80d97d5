-- Settle one model call: its reservation becomes the usage reported (see budget.lua).
-- ARGV: call id, tokens, nusd. Returns 1 when settled, 0 when there was nothing to settle.
if not run_exists() then return 0 end
return budget_settle_call(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
