-- A worker took members it will not run (a batch that found no free slot): each goes back
-- under an admission lease of worker ARGV[1] for ARGV[2] ms BEFORE the worker publishes it
-- again, so that a publish that fails (a broker out of reach) is redone by the watchdog when
-- that lease expires, and the worker then confirms it as usual (confirm_published.lua). A
-- member already claimed by an execution, being ended or ended is left alone.
-- ARGV: node, lease_ms, then the members. Returns the members to publish.
if not run_exists() then return {} end
local holder = 'a:' .. ARGV[1]
local expiry = now_ms() + tonumber(ARGV[2])
local handed = {}
for i = 3, #ARGV do
    local member = ARGV[i]
    local current = redis.call('HGET', K_HOLDERS, member)
    if redis.call('ZSCORE', K_LEASES, member) and (not current or is_placeholder(current)) then
        redis.call('HSET', K_HOLDERS, member, holder)
        redis.call('ZADD', K_LEASES, expiry, member)
        table.insert(handed, member)
    end
end
return handed
