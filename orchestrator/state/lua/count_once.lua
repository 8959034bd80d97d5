-- Count a delivery's records once, however often the delivery is learned again: a learner
-- killed after counting, or two learners on one delivery, must not count a record twice.
-- KEYS[1]: the counter; KEYS[2]: the set of the delivery's record positions it counted;
-- KEYS[3] (optional): a key to set to ARGV[2] when anything was counted (the last reason).
-- ARGV[1]: the set's lifetime in seconds; ARGV[3...]: the positions to count.
local added = redis.call('SADD', KEYS[2], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], ARGV[1])
if added > 0 then
  redis.call('INCRBY', KEYS[1], added)
  if KEYS[3] then
    redis.call('SET', KEYS[3], ARGV[2])
  end
end
return added
