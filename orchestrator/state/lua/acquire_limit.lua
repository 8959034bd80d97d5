-- Take a slot of a limit shared by all workers (loaded without common.lua).
-- KEYS[1]: holders (sorted set token -> expiry ms), KEYS[2]: calls of the last window;
-- for a provider pool also KEYS[3]: calls holding tokens (sorted set token -> time reserved,
-- ms, or sent: restamp_tokens.lua), KEYS[4]: their tokens (hash token -> tokens, with the sum under '#total'), KEYS[5]: the
-- pool's pause (a key whose TTL is what is left of it).
-- ARGV: token, max_concurrent (0: none), per_window (0: none), lease_ms (a live holder renews
-- its lease with renew_limit.lua); for a provider pool also tokens_per_window (0: none), this
-- call's tokens (its upper bound, settled later by settle_tokens.lua), window_ms (of
-- per_window), token_window_ms (how long a call's tokens count once reserved).
-- Returns 0 when everything is taken (or nothing, when any part does not fit), -1 when the
-- call's tokens exceed tokens_per_window (it can never fit), else how many ms to wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, max_concurrent = ARGV[1], tonumber(ARGV[2])
local per_window, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens_per_window, tokens = tonumber(ARGV[5] or '0'), tonumber(ARGV[6] or '0')
local window_ms, token_window_ms = tonumber(ARGV[7] or '60000'), tonumber(ARGV[8] or '60000')
-- Run again with the same token (redis-py sends a script again when its reply was lost), an
-- acquisition finds what its first run took, all of it: it holds it already. Taking it again
-- would count its tokens twice in '#total' and only once when the call leaves the window.
if (max_concurrent > 0 and redis.call('ZSCORE', KEYS[1], token))
    or (per_window > 0 and redis.call('ZSCORE', KEYS[2], token))
    or (tokens_per_window > 0 and redis.call('HEXISTS', KEYS[4], token) == 1) then
    return 0
end
if KEYS[5] then
    local paused = redis.call('PTTL', KEYS[5])
    if paused > 0 then return paused end
end
if max_concurrent > 0 then
    -- A holder that died without releasing frees its slot when its lease expires.
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    if redis.call('ZCARD', KEYS[1]) >= max_concurrent then return 25 end
end
if per_window > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window_ms)
    if redis.call('ZCARD', KEYS[2]) >= per_window then
        local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
        return math.max(1, tonumber(oldest[2]) + window_ms - now)
    end
end
if tokens_per_window > 0 then
    if tokens > tokens_per_window then return -1 end
    local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - token_window_ms)
    for _, call in ipairs(gone) do
        local spent = tonumber(redis.call('HGET', KEYS[4], call) or '0')
        -- Never "-0" (a call settled to nothing), which HINCRBY refuses as no integer.
        if spent ~= 0 then redis.call('HINCRBY', KEYS[4], '#total', 0 - spent) end
        redis.call('HDEL', KEYS[4], call)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - token_window_ms)
    local over = tonumber(redis.call('HGET', KEYS[4], '#total') or '0') + tokens - tokens_per_window
    if over > 0 then
        -- Until enough of the oldest calls have left the window.
        local held = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
        for i = 1, #held, 2 do
            over = over - tonumber(redis.call('HGET', KEYS[4], held[i]) or '0')
            if over <= 0 then return math.max(1, tonumber(held[i + 1]) + token_window_ms - now) end
        end
        return 25
    end
end
if per_window > 0 then
    redis.call('ZADD', KEYS[2], now, token)
    redis.call('PEXPIRE', KEYS[2], window_ms + 1000)
end
if tokens_per_window > 0 then
    redis.call('ZADD', KEYS[3], now, token)
    redis.call('HSET', KEYS[4], token, tokens)
    redis.call('HINCRBY', KEYS[4], '#total', tokens)
    -- Both go together: the sum never outlives the calls it counts.
    redis.call('PEXPIRE', KEYS[3], token_window_ms + 1000)
    redis.call('PEXPIRE', KEYS[4], token_window_ms + 1000)
end
if max_concurrent > 0 then
    redis.call('ZADD', KEYS[1], now + lease_ms, token)
    redis.call('PEXPIRE', KEYS[1], lease_ms * 2)
end
return 0
