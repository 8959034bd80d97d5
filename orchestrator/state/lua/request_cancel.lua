-- Ask a run to stop. ARGV: reason, channel. Returns 1 when the run has not ended (the flag is
-- now set, by this call or an earlier one such as the deadline's), 0 when it had ended or is
-- unknown. Setting the flag is announced on the channel, so running members stop at once.
local state = redis.call('HGET', K_RUN, 'state')
if state ~= 'pending' and state ~= 'running' then return 0 end
if redis.call('HEXISTS', K_RUN, 'cancel') == 0 then
    redis.call('HSET', K_RUN, 'cancel', ARGV[1])
    redis.call('PUBLISH', ARGV[2], redis.call('HGET', K_RUN, 'id') .. '\n' .. ARGV[1])
end
return 1
