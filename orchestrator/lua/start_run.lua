-- Admission: pending -> running, then fill the first window.
-- ARGV: lease_ms. Returns {admitted, denied, cancel_reason or ''}.
local lease_ms = tonumber(ARGV[1])
if redis.call('HGET', K_RUN, 'state') == 'pending' then
    redis.call('HSET', K_RUN, 'state', 'running')
end
local admitted, denied = fill_window(lease_ms)
return {admitted, denied, redis.call('HGET', K_RUN, 'cancel') or ''}
