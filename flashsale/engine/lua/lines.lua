-- Who gets scarce units: the orders the engine makes itself, the line that units coming back
-- go to first (a draw's, a waitlist's), releasing a hold, and a queue drop's door. scripts.py
-- prepends it, after lib.lua, to the scripts that use them (not to purchase.lua: this file
-- runs before every call of a script that has it, and a purchase batch needs none of it).

-- What a request's variant gets on a drop whose `variants` field is `listed` (nil: none):
-- nil when it fits, else the refusal (status_feed.py variant_refusal is the same rule).
local function variant_refusal(listed, code)
  if not listed or listed == '' then
    return code ~= '' and 'no_variants' or nil
  end
  if code == '' then return 'variant_required' end
  for c in string.gmatch(listed, '%S+') do
    if c == code then return nil end
  end
  return 'unknown_variant'
end

-- Order ids the engine makes itself (a draw's winners, a waitlist's entries served): the
-- shape of ids.py's, <drop>-<9 digits of ms><16 digits>, the 16 from the drop's secret seed
-- and the order's seq, so they never repeat and nobody can guess one.
local DIGITS = '234567abcdefghijklmnopqrstuvwxyz'  -- ids.py _SORTED_DIGITS
local EPOCH_MS = 1577836800000
-- A hex digit -> one of the last 16 DIGITS. A function, not a table built up front: this
-- file runs before every script, and a loop here cost every purchase batch 11 us.
local function hex_digit(c)
  local v = tonumber(c, 16)
  return string.sub(DIGITS, 17 + v, 17 + v)
end

local function engine_order_id(now, seq, seed)
  local ms, stamp = now - EPOCH_MS, {}
  for shift = 40, 0, -5 do
    local d = math.floor(ms / 2 ^ shift) % 32
    stamp[#stamp + 1] = string.sub(DIGITS, d + 1, d + 1)
  end
  local tail = string.gsub(string.sub(redis.sha1hex(seed .. ':order:' .. seq), 1, 16), '.',
    hex_digit)
  return DROP_ID .. '-' .. table.concat(stamp) .. tail
end

-- A reserved order for a buyer the engine chose (a draw's winner, a waitlist's entry): what
-- purchase.lua's `decide` makes of a tap, one order at a time. Returns its id.
local function grant(buyer, qty, code, now)
  local f = redis.call('HMGET', K_DROP, 'seq', 'price', 'deposit', 'currency',
    'payment_window_s', 'seed')
  local seq = tonumber(f[1]) + 1
  local price, deposit = tonumber(f[2]), tonumber(f[3])
  if code then
    local v = redis.call('HMGET', K_DROP, vfield(code, 'price'), vfield(code, 'deposit'))
    price, deposit = tonumber(v[1]), tonumber(v[2])
  end
  local expires_at = now + tonumber(f[5]) * 1000
  local order = {
    id = engine_order_id(now, seq, f[6] or ''), drop_id = DROP_ID, seq = seq, buyer = buyer,
    quantity = qty, amount = (deposit or price) * qty, currency = f[4], created_at = now,
    status = 'reserved', expires_at = expires_at,
  }
  if code then order.variant = code end
  if deposit then order.balance = (price - deposit) * qty end
  local packed = cmsgpack.pack(order)
  redis.call('HSET', K_ORDERS, order.id, packed)
  redis.call('ZADD', K_HOLDS, expires_at, order.id)
  redis.call('HINCRBY', K_BUYERS, buyer, qty)
  redis.call('HSET', K_DROP, 'seq', seq)
  redis.call('HINCRBY', K_DROP, 'remaining', -qty)
  redis.call('HINCRBY', K_DROP, 'sold', qty)
  if code then
    redis.call('HINCRBY', K_DROP, vfield(code, 'remaining'), -qty)
    redis.call('HINCRBY', K_DROP, vfield(code, 'sold'), qty)
  end
  live_changed = true
  append_event('created', packed)
  return order.id
end

-- Units that came back, or a draw's units, go to the line first: a draw's entries not yet
-- won, in draw order, or a waitlist's waiting entries, in position order. Each entry that
-- fits (its variant has the units, its buyer stays within the limit) gets a reserved order;
-- one that does not is passed over and keeps its place. At most `max_scan` entries are
-- looked at, so a release costs a bounded time. `at_draw`: the draw itself is serving.
-- Returns how many it served.
local function serve_line(now, max_scan, at_draw)
  local f = redis.call('HMGET', K_DROP, 'remaining', 'per_buyer_limit', 'admission')
  local remaining, limit = tonumber(f[1]), tonumber(f[2])
  local served_as = f[3] == 'draw' and 'won' or 'served'
  local kept, scanned, served = 0, 0, 0
  while remaining > 0 and scanned < max_scan do
    local chunk = redis.call('ZRANGE', K_LINE, kept, kept + 99)
    if #chunk == 0 then break end
    for _, buyer in ipairs(chunk) do
      scanned = scanned + 1
      local e = cmsgpack.unpack(redis.call('HGET', K_ENTRIES, buyer))
      local left = remaining
      if e.variant then
        left = tonumber(redis.call('HGET', K_DROP, vfield(e.variant, 'remaining')))
      end
      local held = tonumber(redis.call('HGET', K_BUYERS, buyer)) or 0
      if left >= e.quantity and held + e.quantity <= limit then
        e.order_id = grant(buyer, e.quantity, e.variant, now)
        e.status = served_as
        if at_draw then e.won_at_draw = true end
        redis.call('HSET', K_ENTRIES, buyer, cmsgpack.pack(e))
        redis.call('ZREM', K_LINE, buyer)
        remaining = remaining - e.quantity
        served = served + 1
      else
        kept = kept + 1
      end
      if remaining <= 0 or scanned >= max_scan then break end
    end
  end
  if served > 0 then
    local g = redis.call('HMGET', K_DROP, 'status', 'remaining', 'variants')
    if tonumber(g[2]) == 0 and g[1] == 'live' then
      set_status('sold_out')
    elseif g[3] and g[3] ~= '' then
      publish_variants(g[1])  -- a variant may have sold out
    end
  end
  return served
end

local SERVE_SCAN = 10000  -- entries a release or a restock looks at, at most

-- Whether units that come back go to a line first: a drawn draw's, a waitlist's.
local function has_line()
  return redis.call('EXISTS', K_LINE) == 1
end

-- Ends a hold: units back on sale (to the line first), the buyer's count down, the order
-- expired, an event out.
local function release(order, now)
  local q = order.quantity
  order.status = 'expired'
  order.ended_at = now
  local packed = cmsgpack.pack(order)
  redis.call('HSET', K_ORDERS, order.id, packed)
  redis.call('ZREM', K_HOLDS, order.id)
  redis.call('HINCRBY', K_DROP, 'remaining', q)
  redis.call('HINCRBY', K_DROP, 'sold', -q)
  live_changed = true
  if redis.call('HINCRBY', K_BUYERS, order.buyer, -q) <= 0 then
    redis.call('HDEL', K_BUYERS, order.buyer)
  end
  if order.variant then
    redis.call('HINCRBY', K_DROP, vfield(order.variant, 'sold'), -q)
    redis.call('HINCRBY', K_DROP, vfield(order.variant, 'remaining'), q)
  end
  append_event('expired', packed)
  if has_line() then serve_line(now, SERVE_SCAN) end
  -- what the line left is on sale again
  local f = redis.call('HMGET', K_DROP, 'status', 'remaining')
  if tonumber(f[2]) > 0 then
    if f[1] == 'sold_out' then
      set_status('live')
    elseif order.variant and
        tonumber(redis.call('HGET', K_DROP, vfield(order.variant, 'remaining'))) == q then
      publish_variants('live')  -- the order's variant was sold out and is on sale again
    end
  end
  return packed
end

-- A queue drop's door (CONTRACT "Queue"): expires passes left unused, then admits waiting
-- tickets in place order, at most admit_per_s a second (a token bucket holding a quarter
-- second's worth, filling from the drop's creation) and never more admitted-but-unused
-- tickets than units remain.
-- Writes nothing when nothing changes, so a poll that admits nobody costs no AOF write.
-- Returns how many it admitted.
local DOOR_BATCH = 1000

local function admit(now)
  local f = redis.call('HMGET', K_DROP, 'admission', 'status', 'remaining', 'q_admitted',
    'q_tokens', 'q_at', 'admit_per_s', 'pass_ttl_s', 'q_popped', 'seed', 'created_at')
  if f[1] ~= 'queue' then return 0 end
  local admitted, popped = tonumber(f[4]) or 0, tonumber(f[9]) or 0
  local changed = false
  local due = redis.call('ZRANGEBYSCORE', K_PASSES, '-inf', now, 'LIMIT', 0, 1000)
  for _, buyer in ipairs(due) do
    local t = cmsgpack.unpack(redis.call('HGET', K_TICKETS, buyer))
    if t.status == 'admitted' then
      t.status = 'expired'
      redis.call('HSET', K_TICKETS, buyer, cmsgpack.pack(t))
      admitted = admitted - 1
    end
    redis.call('ZREM', K_PASSES, buyer)
    changed = true
  end
  local rate = tonumber(f[7])
  local cap = math.max(1, math.ceil(rate / 4))
  local tokens = math.min(cap, (tonumber(f[5]) or 0) + (now - tonumber(f[6] or f[11])) * rate / 1000)
  -- at most DOOR_BATCH a call: a script unpacks its writes' arguments, and Lua's stack takes
  -- no more than some thousands (a door of 100,000 a second failed here); the rest of the
  -- tokens wait for the next call
  local k = math.min(math.floor(tokens), tonumber(f[3]) - admitted, DOOR_BATCH)
  local n = 0
  if f[2] == 'live' and k > 0 then
    local head = redis.call('ZPOPMIN', K_QUEUE, k)
    local ttl, seed = tonumber(f[8]) * 1000, f[10] or ''
    local targs, pargs = {}, {}
    for i = 1, #head, 2 do
      local buyer = head[i]
      popped = popped + 1
      n = n + 1
      local pass = string.sub(redis.sha1hex(seed .. ':pass:' .. buyer .. ':' .. popped), 1, 32)
      targs[#targs + 1] = buyer
      targs[#targs + 1] = cmsgpack.pack({status = 'admitted', position = popped, pass = pass,
        admitted_at = now, pass_expires_at = now + ttl})
      pargs[#pargs + 1] = now + ttl
      pargs[#pargs + 1] = buyer
    end
    if n > 0 then
      redis.call('HSET', K_TICKETS, unpack(targs))
      redis.call('ZADD', K_PASSES, unpack(pargs))
      admitted = admitted + n
      tokens = tokens - n
      changed = true
    end
  end
  if changed then
    redis.call('HSET', K_DROP, 'q_admitted', admitted, 'q_popped', popped)
    live_changed = true
  end
  if n > 0 then  -- the bucket's state moves only when it is spent
    redis.call('HSET', K_DROP, 'q_tokens', tokens, 'q_at', now)
  end
  return n
end
