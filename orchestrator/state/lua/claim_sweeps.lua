-- A watchdog takes the runs whose sweep is due (loaded without common.lua).
-- KEYS[1]: the active runs (sorted set run id -> next sweep due, ms). ARGV: limit, sweep_ms.
-- Returns up to `limit` due run ids, oldest due first, each pushed to now + sweep_ms, so no
-- other watchdog takes them again within the interval. A claimer that dies mid-sweep leaves
-- its runs due one interval later, for whichever watchdog comes next.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local next_due = now + tonumber(ARGV[2])
-- One ZADD per 500 runs (not one per run): the claim's cost barely grows with its size.
for first = 1, #due, 500 do
    local args = {}
    for i = first, math.min(first + 499, #due) do
        args[#args + 1] = next_due
        args[#args + 1] = due[i]
    end
    redis.call('ZADD', KEYS[1], 'XX', unpack(args))
end
return due
