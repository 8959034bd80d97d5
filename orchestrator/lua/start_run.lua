-- Admission: pending -> running, then fill the first window, which worker NODE publishes.
-- ARGV: node, lease_ms. Returns {admitted, denied, cancel_reason or ''}.
if not run_exists() then return {{}, {}, ''} end
if redis.call('HGET', K_RUN, 'state') == 'pending' then
    redis.call('HSET', K_RUN, 'state', 'running')
end
local admitted, denied = fill_window(ARGV[1], tonumber(ARGV[2]))
return {admitted, denied, redis.call('HGET', K_RUN, 'cancel') or ''}
