-- Ask a run to stop. ARGV: reason. Returns 1 when this call set the flag.
local state = redis.call('HGET', K_RUN, 'state')
if (state == 'pending' or state == 'running') and redis.call('HEXISTS', K_RUN, 'cancel') == 0 then
    redis.call('HSET', K_RUN, 'cancel', ARGV[1])
    return 1
end
return 0
