#!lua flags=allow-oom
-- Deletes what a submit that failed wrote of a run, only while the run is still pending
-- (loaded without common.lua): a sweep that admitted it meanwhile (a publish retried past a
-- sweep interval) made it a run whose members are queued, which must go on. It only deletes,
-- so it runs while Redis is full (allow-oom): that is when a submit fails.
-- KEYS: every key of the run, its hash first. Returns 1 when deleted, 0 when kept.
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'pending' then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
