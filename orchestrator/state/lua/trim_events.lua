-- A big run's event stream is most of what it would keep once it ended (two events a member,
-- bounded only by events_maxlen while it runs). Some time after its end (its readers caught
-- up: Settings.ended_events_keep_s), an ended run of EVENTS_TRIM_FROM members or more keeps its
-- last events only, one for every EVENTS_KEPT_PER members, its RunEnd last: at most 1 KB per
-- member in all. Its outputs and result say the rest. Safe to repeat.
-- Returns 1 when the stream was trimmed, 0 when the run is running, small or gone.
local state = redis.call('HGET', K_RUN, 'state')
if not state or state == 'running' or state == 'pending' then return 0 end
local total = num(K_RUN, 'total') or 0
if total < EVENTS_TRIM_FROM then return 0 end
redis.call('XTRIM', K_EVENTS, 'MAXLEN', '~', math.floor(total / EVENTS_KEPT_PER))
return 1
