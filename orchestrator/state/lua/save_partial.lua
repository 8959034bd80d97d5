-- A partial reducer ended: keep its output for the rest of the tree (and for a takeover of the
-- final member, which then does not run it again), with its events. ARGV: part, token (the
-- final member's lease token), output_json, then the events to emit in order (the last one is
-- AgentEnd). Returns 1 when stored, 0 when this execution no longer holds the final member
-- (the output is dropped) or the part was stored already (first write wins).
if not run_exists() then return 0 end
local part, token = ARGV[1], ARGV[2]
if redis.call('HGET', K_HOLDERS, 'final') ~= token then return 0 end
if redis.call('HSETNX', K_PARTIALS, part, ARGV[3]) == 0 then return 0 end
for i = 4, #ARGV do emit(ARGV[i]) end
return 1
