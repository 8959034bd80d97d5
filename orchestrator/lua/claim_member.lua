-- A member execution starts: take the lease, or learn that it must not run.
-- ARGV: member, token, lease_ms, start_event_json.
-- Returns {'done', output} for a member already completed (a late duplicate),
-- {'cancelled', reason} when the run is being cancelled, {'busy'} when another live execution
-- holds the lease (or none was granted), {'run', input, checkpoint or ''} otherwise: a member
-- that an earlier execution left mid-way resumes from its last checkpoint.
local member, token = ARGV[1], ARGV[2]
local lease_ms = tonumber(ARGV[3])
local now = now_ms()
local output = redis.call('HGET', K_OUTPUTS, member)
if output then return {'done', output} end
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
local expiry = redis.call('ZSCORE', K_LEASES, member)
if not expiry then return {'busy'} end
local holder = redis.call('HGET', K_HOLDERS, member)
if holder and holder ~= token and tonumber(expiry) > now then return {'busy'} end
redis.call('HSET', K_HOLDERS, member, token)
redis.call('ZADD', K_LEASES, now + lease_ms, member)
emit(ARGV[4])
local input
if member == 'final' then
    input = redis.call('HGET', K_RUN, 'final_prompt')
else
    input = redis.call('LINDEX', K_ITEMS, tonumber(member))
end
return {'run', input or '', redis.call('HGET', K_CHECKPOINTS, member) or ''}
