-- How long until the earliest sweep of an active run is due (loaded without common.lua).
-- KEYS[1]: the active runs (sorted set run id -> next sweep due, ms). Returns ms (0 when one
-- is due now), or -1 when no run is active.
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(0, math.floor(tonumber(first[2]) - now))
