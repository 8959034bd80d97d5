-- Keep a running member's state after a completed turn, if this execution still holds it.
-- ARGV: member, token, checkpoint_json. Returns 1 when kept.
if not run_exists() or redis.call('HGET', K_HOLDERS, ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', K_CHECKPOINTS, ARGV[1], ARGV[3])
return 1
