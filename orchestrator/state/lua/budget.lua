-- The money rules of a run (prepended to run scripts after common.lua). K_BUDGET, the ledger,
-- holds whole numbers only, so that sums never drift: tokens, and cost in nano-USD (1e-9 $).
--   max_agents, max_tokens, max_nusd   the limits (absent: no limit)
--   agents                             agents admitted
--   spent_tokens, spent_nusd           what settled calls used, and calls charged unsettled
--   reserved_tokens, reserved_nusd     the upper bounds of the calls in flight
--   floor_tokens, floor_nusd           the least a member's call can reserve (its output
--   final_floor_tokens, ...            limit): admission stops when even that cannot fit
-- K_RESERVED holds each call in flight: call id ('TOKEN/ATTEMPT/N': the execution's lease
-- token, one id per execution attempt, N counting the attempt's calls, so no two calls ever
-- share an id) -> 'tokens nusd'. K_ENDED marks each call that ended, until its member completes:
-- SETTLED (its usage was counted) or CHARGED (its execution went away, and its bound was
-- counted). Spent plus reserved never passes a limit, and a call's usage never passes its
-- reservation, so what a run spends never passes its limits. K_RESERVED holds only calls in
-- flight, so the scans below cost what is in flight, however many calls the run made.
--
-- The invariant: every reservation ends exactly once, settled or charged, whatever process
-- dies or Redis loses. A settle ends its own call; a claim that displaces an execution (its
-- lease expired, its process is gone, or a retried delivery takes over the attempt before it),
-- the sweep of an expired lease and the completion of a member charge what that execution left
-- in flight; the end of a run charges whatever is still reserved. A mark makes a second ending
-- of the same call (a settle retried after its reply was lost, a late settle of a charged call)
-- change nothing; a settle that finds neither a reservation nor a mark (its reservation was
-- lost in a failover) counts the usage it reports.

local SETTLED, CHARGED = 's', 'c'

local LIMITS = {{'max_tokens', 'tokens'}, {'max_nusd', 'nusd'}}
local LIMIT_NAMES = {max_tokens = 'max_tokens', max_nusd = 'max_cost_usd'}

-- Whole numbers as Redis arguments: Lua would write a large one as '1e+15'.
local function int(value)
    return string.format('%d', value)
end

local function in_units(limit, value)
    if limit == 'max_nusd' then return string.format('%.9f', value / 1e9) .. ' USD' end
    return int(value) .. ' tokens'
end

-- The ledgers that count what `ledger` counts: itself, then its ancestors' ('parents', their
-- keys nearest first) when its run is a child run. A child spends its parent's budget: what it
-- reserves, spends and admits counts in every ledger of its chain, and fits only where all of
-- them have room. A child's id begins with its root's hash tag, so these keys live on the shard
-- of the run's own; they are read from the ledger rather than declared, since run scripts
-- declare the run's own keys (orchestrator/state/children.py).
local function ledger_chain(ledger)
    local chain = {ledger}
    local parents = redis.call('HGET', ledger, 'parents')
    if parents then
        for key in string.gmatch(parents, '%S+') do table.insert(chain, key) end
    end
    return chain
end

-- Add `amount` to `field` of every ledger of `chain`.
local function chain_add(chain, field, amount)
    if amount == 0 then return end
    for _, key in ipairs(chain) do redis.call('HINCRBY', key, field, int(amount)) end
end

-- Whether amounts ({tokens = n, nusd = n}) fit: 'deny' with the limit, what is spent and the
-- amount when they do not even once every call in flight has settled to nothing; 'wait' when
-- they fit only then (if with_reserved); 'ok' otherwise. Every ledger of the chain must have
-- room (a parent run's limit is named as such). ledger: the run's K_BUDGET, unless another
-- run's (a concurrency group admits the members of the other runs of its group).
local function budget_fit(amounts, with_reserved, ledger)
    local verdict = 'ok'
    for depth, key in ipairs(ledger_chain(ledger or K_BUDGET)) do
        for _, pair in ipairs(LIMITS) do
            local limit = num(key, pair[1])
            if limit then
                local spent = num(key, 'spent_' .. pair[2]) or 0
                local need = amounts[pair[2]]
                if spent + need > limit then
                    local name = LIMIT_NAMES[pair[1]] .. ' (' .. in_units(pair[1], limit) .. ')'
                    if depth > 1 then name = 'the parent run\'s ' .. name end
                    return 'deny', name, in_units(pair[1], spent), in_units(pair[1], need)
                end
                local reserved = num(key, 'reserved_' .. pair[2]) or 0
                if with_reserved and spent + reserved + need > limit then verdict = 'wait' end
            end
        end
    end
    return verdict
end

-- Admit one agent, or say why not. 'wait' means the least call of an agent does not fit beside
-- the calls in flight, but would once they settle: admission pauses instead of denying.
-- ledger: as for budget_fit.
local function budget_admit(inflight, floor, ledger)
    ledger = ledger or K_BUDGET
    local chain = ledger_chain(ledger)
    for depth, key in ipairs(chain) do
        local max_agents = num(key, 'max_agents')
        if max_agents and (num(key, 'agents') or 0) >= max_agents then
            local whose = depth > 1 and 'the parent run\'s ' or ''
            return 'deny', 'budget: ' .. whose .. 'max_agents (' .. max_agents .. ') reached'
        end
    end
    local least = {
        tokens = num(ledger, floor .. '_tokens') or 0,
        nusd = num(ledger, floor .. '_nusd') or 0,
    }
    local verdict, limit, spent, need = budget_fit(least, inflight > 0, ledger)
    if verdict == 'deny' then
        return 'deny', 'budget: ' .. limit .. ' reached: ' .. spent .. ' spent, an agent needs '
            .. need .. ' for a call'
    end
    if verdict == 'ok' then chain_add(chain, 'agents', 1) end
    return verdict, ''
end

-- Reserve a call's upper bound. 'deny' when it cannot fit even once every call in flight has
-- settled to nothing; 'wait' when it would fit then. A call id already known (a reserve
-- retried after its reply was lost) is 'ok' without a second reservation.
local function budget_reserve_call(call_id, tokens, nusd)
    if redis.call('HEXISTS', K_RESERVED, call_id) == 1
        or redis.call('HEXISTS', K_ENDED, call_id) == 1 then
        return 'ok', ''
    end
    local verdict, limit, spent, need = budget_fit({tokens = tokens, nusd = nusd}, true)
    if verdict == 'deny' then
        return 'deny', 'budget: ' .. limit .. ': a call that may use ' .. need
            .. ' does not fit, ' .. spent .. ' spent'
    end
    if verdict == 'ok' then
        local chain = ledger_chain(K_BUDGET)
        chain_add(chain, 'reserved_tokens', tokens)
        chain_add(chain, 'reserved_nusd', nusd)
        redis.call('HSET', K_RESERVED, call_id, int(tokens) .. ' ' .. int(nusd))
    end
    return verdict, ''
end

-- A reservation ('tokens nusd') as numbers, or nil for none.
local function reservation(entry)
    if not entry then return nil end
    local res_tokens, res_nusd = string.match(entry, '^(%S+) (%S+)$')
    return tonumber(res_tokens), tonumber(res_nusd)
end

-- End one call: its reservation (if it is in flight) leaves the reserved sums, `tokens` and
-- `nusd` are spent, and `mark` says how it ended.
local function budget_end_call(call_id, entry, tokens, nusd, mark)
    local res_tokens, res_nusd = reservation(entry)
    local chain = ledger_chain(K_BUDGET)
    if res_tokens then
        chain_add(chain, 'reserved_tokens', -res_tokens)
        chain_add(chain, 'reserved_nusd', -res_nusd)
        redis.call('HDEL', K_RESERVED, call_id)
    end
    redis.call('HSET', K_ENDED, call_id, mark)
    chain_add(chain, 'spent_tokens', tokens)
    chain_add(chain, 'spent_nusd', nusd)
    chain_add(chain, 'calls', 1)
end

-- Replace a call's reservation with what it used. Once only: a settle retried after a lost
-- reply, or of a call already charged, changes nothing (0). A call with neither a reservation
-- nor a mark had its reservation lost with a Redis write (a failover): what it reports is
-- counted all the same, for the provider billed it.
local function budget_settle_call(call_id, tokens, nusd)
    if redis.call('HEXISTS', K_ENDED, call_id) == 1 then return 0 end
    budget_end_call(call_id, redis.call('HGET', K_RESERVED, call_id), tokens, nusd, SETTLED)
    return 1
end

-- Charge a call in flight (`entry`: its reservation, nil when it is not in flight) at its
-- reservation: its execution went away, the provider may have billed it, and its settle may
-- never come.
local function budget_charge_call(call_id, entry)
    local res_tokens, res_nusd = reservation(entry)
    if res_tokens then budget_end_call(call_id, entry, res_tokens, res_nusd, CHARGED) end
end

-- The calls in flight of execution `token` (any of its attempts) are charged at their
-- reservations: it lost its lease, or was displaced by a claim.
local function budget_charge_orphans(token)
    local prefix = token .. '/'
    local entries = redis.call('HGETALL', K_RESERVED)
    for i = 1, #entries, 2 do
        if string.sub(entries[i], 1, #prefix) == prefix then
            budget_charge_call(entries[i], entries[i + 1])
        end
    end
end

-- A member's execution ended: the calls of its attempt `attempt` ('TOKEN/ATTEMPT', calls 0 to
-- count - 1) still in flight (a settle lost in an outage) are charged, and their marks go,
-- since nothing of that attempt can settle any more.
local function budget_close_attempt(attempt, count)
    for n = 0, count - 1 do
        local call_id = attempt .. '/' .. n
        budget_charge_call(call_id, redis.call('HGET', K_RESERVED, call_id))
        redis.call('HDEL', K_ENDED, call_id)
    end
end

-- The run ends: whatever is still reserved is charged, so nothing stays reserved.
local function budget_charge_all()
    local entries = redis.call('HGETALL', K_RESERVED)
    for i = 1, #entries, 2 do budget_charge_call(entries[i], entries[i + 1]) end
end
