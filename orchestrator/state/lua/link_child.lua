-- A member starts a child run, or finds the one an earlier execution of it started (a
-- redelivered member adopts its children). KEYS: the parent run's keys.
-- ARGV: member, token (the execution's lease token), field ('child:MEMBER:KEY', KEY naming the
-- call that starts it), the new child's id, the ChildRunStart event JSON.
-- Returns {'new', child id} (linked now: the caller creates it), {'adopt', child id} (an
-- earlier execution linked it), {'cancelled', reason} (the parent is being cancelled: no child
-- starts), {'lost'} (the execution no longer holds the member) or {'gone'} (the parent ended).
if not run_exists() or redis.call('HGET', K_RUN, 'state') ~= 'running' then return {'gone'} end
local cancel = redis.call('HGET', K_RUN, 'cancel')
if cancel then return {'cancelled', cancel} end
if redis.call('HGET', K_HOLDERS, ARGV[1]) ~= ARGV[2] then return {'lost'} end
local known = redis.call('HGET', K_RUN, ARGV[3])
if known then return {'adopt', known} end
redis.call('HSET', K_RUN, ARGV[3], ARGV[4])
emit(ARGV[5])
return {'new', ARGV[4]}
