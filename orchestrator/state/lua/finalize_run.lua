-- The run ends once. The caller then removes it from the active runs (a key of no run,
-- which may live on another shard): a run ended whose removal was lost is dropped by its next
-- sweep, which finds it ended.
-- ARGV: state, ending_json (what the run's result adds to its outputs; '' for none), error,
-- keep_s, then events to emit before RunEnd, RunEnd last.
-- Returns 1 when this call ended the run, 2 when it did and the run is big enough to have its
-- event stream trimmed later (trim_events.lua), 0 when it had already ended.
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'running' and state ~= 'pending' then return 0 end
redis.call('HSET', K_RUN, 'state', ARGV[1], 'result', ARGV[2], 'error', ARGV[3], 'ended_ms', now_ms())
for i = 5, #ARGV do emit(ARGV[i]) end
redis.call('XADD', K_DONE, '*', 'state', ARGV[1])
-- Nothing stays reserved once a run ended: a call still in flight (its execution went away
-- unseen) is charged at its bound, and a settle that comes later changes nothing.
budget_charge_all()
-- What only a running run needs goes now: its items (a big run's inputs may be most of its
-- size), who holds which member, leases, checkpoints and limits. Every member has its output,
-- so a late delivery of one finds it stored without reading anything else.
redis.call('DEL', K_ITEMS, K_HOLDERS, K_LEASES, K_CHECKPOINTS, K_DEADLINES, K_DENIED)
for _, key in ipairs(RUN_KEYS) do redis.call('EXPIRE', key, tonumber(ARGV[4])) end
if (num(K_RUN, 'total') or 0) >= EVENTS_TRIM_FROM then return 2 end
return 1
