-- A run's trace: the W3C traceparent its spans hang from. ARGV: the traceparent of a root
-- that a worker started for a run whose client did not trace. It is kept unless the run has
-- one already; a run that no longer exists is not re-created. Returns the run's traceparent,
-- or '' when the run is gone.
if not run_exists() then return '' end
redis.call('HSETNX', K_RUN, 'traceparent', ARGV[1])
return redis.call('HGET', K_RUN, 'traceparent')
