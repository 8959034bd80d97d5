-- A call of a tokens-per-minute pool ended: its tokens become what it used (loaded without
-- common.lua). KEYS[1]: the pool's token amounts (hash token -> tokens, sum under '#total').
-- ARGV: token, tokens used. A call that already left the window is not counted again.
-- Returns 1 when settled, 0 when the call was no longer in the window.
local before = redis.call('HGET', KEYS[1], ARGV[1])
if not before then return 0 end
local used = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], used)
local change = used - tonumber(before)
if change ~= 0 then redis.call('HINCRBY', KEYS[1], '#total', change) end
return 1
