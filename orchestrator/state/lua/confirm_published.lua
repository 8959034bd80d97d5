-- Worker NODE published these members: they wait in the queue from now on, without a lease
-- to expire (see common.lua). ARGV: node, then the members. A member already taken (received,
-- claimed) or handed to another worker is left as it is.
local holder = 'a:' .. ARGV[1]
for i = 2, #ARGV do
    if redis.call('HGET', K_HOLDERS, ARGV[i]) == holder then
        redis.call('ZADD', K_LEASES, 'XX', QUEUED, ARGV[i])
    end
end
return 0
