-- A big run's event stream is most of what it would keep once it ended (two events a member,
-- bounded only by events_maxlen while it runs). ARGV[1] (keep_ms) after its end, its readers
-- had their time to catch up: an ended run of EVENTS_TRIM_FROM members or more then keeps its
-- last events only, one for every EVENTS_KEPT_PER members, its RunEnd last: at most 1 KB per
-- member in all. Its outputs and result say the rest. Safe to repeat.
-- Returns when the stream is to be trimmed (Redis time, ms) while that is still to come, else
-- 0: trimmed now, or nothing to trim (a small run, a running one, one gone).
local state = redis.call('HGET', K_RUN, 'state')
if not state or state == 'running' or state == 'pending' then return 0 end
local total = num(K_RUN, 'total') or 0
if total < EVENTS_TRIM_FROM then return 0 end
local due = (num(K_RUN, 'ended_ms') or 0) + tonumber(ARGV[1])
if now_ms() < due then return due end
redis.call('XTRIM', K_EVENTS, 'MAXLEN', '~', math.floor(total / EVENTS_KEPT_PER))
return 0
