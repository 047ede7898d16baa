-- Compacts a drop closed longer than the retention (ARGV[1], ms) whose every event is
-- settled and which holds no unpaid hold: its orders, buyer counts, idempotency keys, void
-- marks, stream and a queue's tickets leave Redis, the drop's own record stays, marked
-- `compacted`. The order store has every order by then (settled), and reads fall back to
-- it (compaction.py).
-- ARGV[2]: the settlement consumer group. Returns 1 if it compacted, 0 if not (yet).
if redis.call('EXISTS', K_DROP) == 0 then return 0 end
local f = redis.call('HMGET', K_DROP, 'status', 'closed_at', 'compacted')
if f[1] ~= 'closed' or not f[2] or f[3] then return 0 end
local now = now_ms()
if now - tonumber(f[2]) < tonumber(ARGV[1]) then return 0 end
if redis.call('ZCARD', K_HOLDS) > 0 then return 0 end
if redis.call('EXISTS', K_EVENTS) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', K_EVENTS)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[2] then
      -- lag is nil on a stream trimmed past what the group read: then ask the entries
      local lag = info['lag']
      if type(lag) ~= 'number' then
        local last = redis.call('XREVRANGE', K_EVENTS, '+', '-', 'COUNT', 1)[1]
        lag = (last and last[1] ~= info['last-delivered-id']) and 1 or 0
      end
      if info['pending'] > 0 or lag > 0 then return 0 end
    end
  end
end
-- A queue's tickets and a line go too; a draw's or a waitlist's entries stay, so that the
-- draw can still be verified (they are one per buyer, not per order).
redis.call('DEL', K_BUYERS, K_IDEM, K_ORDERS, K_EVENTS, K_HOLDS, K_VOID, K_QUEUE, K_TICKETS,
  K_PASSES, K_LINE)
redis.call('HSET', K_DROP, 'compacted', now)
return 1
