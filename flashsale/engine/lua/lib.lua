-- Shared by every script; scripts.py prepends it. KEYS are always DropKeys, in its order.
-- scripts.py also prepends STATUS_CHANNEL and LIVE_CHANNEL, from keys.py.
local K_DROP, K_BUYERS, K_IDEM, K_ORDERS, K_EVENTS, K_HOLDS, K_VOID =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local K_QUEUE, K_TICKETS, K_PASSES, K_ENTRIES, K_LINE = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local DROP_ID = string.match(K_DROP, '{(.-)}')

-- Redis's clock is the only clock: holds and schedules never depend on a gateway's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Every gateway answers purchases of a sold-out or closed drop without asking Redis, so
-- every change of status is published: a restock or a reopen reaches them at once.
-- Whether this script changed what /live shows (remaining, sold, status).
local live_changed = false

local function publish_status(status)
  redis.call('PUBLISH', STATUS_CHANNEL, DROP_ID .. ' ' .. status)
  live_changed = true
end

local function set_status(status)
  redis.call('HSET', K_DROP, 'status', status)
  publish_status(status)
end

-- A variant's field in the drop hash (models.py variant_field spells it alike).
local function vfield(code, name)
  return 'v:' .. code .. ':' .. name
end

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

-- A variant selling out, or coming back, changes what every gateway may refuse without
-- Redis (status_feed.py): "<drop> <status> variants" tells them to read the drop again.
local function publish_variants(status)
  redis.call('PUBLISH', STATUS_CHANNEL, DROP_ID .. ' ' .. status .. ' variants')
end

-- Once per script, at its end: the drop's counters for every gateway's /live viewers. One
-- message per script call, so a batch of purchases is one message, never one per tap:
-- "<remaining> <sold> <status>", then "<code>=<remaining>/<sold>" for each variant whose
-- counters this script changed (or all of them); the viewers' copy merges them (live.py).
-- A queue drop's waiting room, as /live shows it: "q=<waiting>/<admitted>" (nil on others).
local function queue_token()
  local f = redis.call('HMGET', K_DROP, 'admission', 'q_admitted')
  if f[1] ~= 'queue' then return nil end
  return 'q=' .. redis.call('ZCARD', K_QUEUE) .. '/' .. (f[2] or 0)
end

local function publish_counts(remaining, sold, status, variant_counts)
  local msg = remaining .. ' ' .. sold .. ' ' .. status
  if variant_counts and #variant_counts > 0 then
    msg = msg .. ' ' .. table.concat(variant_counts, ' ')
  end
  local q = queue_token()
  if q then msg = msg .. ' ' .. q end
  redis.call('PUBLISH', LIVE_CHANNEL .. DROP_ID, msg)
end

-- Every variant's counters, as publish_counts takes them (none on a drop without).
local function all_variant_counts()
  local listed = redis.call('HGET', K_DROP, 'variants')
  local out = {}
  if not listed or listed == '' then return out end
  local codes, names = {}, {}
  for code in string.gmatch(listed, '%S+') do
    codes[#codes + 1] = code
    names[#names + 1] = vfield(code, 'remaining')
    names[#names + 1] = vfield(code, 'sold')
  end
  local c = redis.call('HMGET', K_DROP, unpack(names))  -- one read for all of them
  for i, code in ipairs(codes) do
    out[i] = code .. '=' .. c[2 * i - 1] .. '/' .. c[2 * i]
  end
  return out
end

local function publish_live()
  if not live_changed then return end
  local f = redis.call('HMGET', K_DROP, 'remaining', 'sold', 'status')
  publish_counts(f[1], f[2], f[3], all_variant_counts())
end

-- A pending drop whose opens_at has passed is live; every script sees that at once,
-- whether or not the sweeper has got there yet. `promote_from` takes the fields a script
-- has read already.
local function promote_from(now, status, opens_at, remaining)
  if status == 'pending' and opens_at and opens_at ~= '' and now >= tonumber(opens_at) then
    status = tonumber(remaining) > 0 and 'live' or 'sold_out'
    set_status(status)
  end
  return status
end

local function promote(now)
  local f = redis.call('HMGET', K_DROP, 'status', 'opens_at', 'remaining')
  return promote_from(now, f[1], f[2], f[3])
end

-- The drop's stream (K_EVENTS), read by the settlement workers. An entry is one order
-- ('o': msgpack) or, for a batch of purchases, all of its orders ('b': a msgpack array of
-- them, its header followed by the packed orders as they are), so a batch costs one entry.
local function append_event(kind, packed)
  redis.call('XADD', K_EVENTS, '*', 't', kind, 'o', packed)
end

local function append_events(kind, packed_list)
  local n = #packed_list
  local head
  if n < 16 then
    head = string.char(0x90 + n)
  elseif n < 65536 then
    head = string.char(0xdc, math.floor(n / 256), n % 256)
  else
    head = string.char(0xdd, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
      math.floor(n / 256) % 256, n % 256)
  end
  redis.call('XADD', K_EVENTS, '*', 't', kind, 'b', head .. table.concat(packed_list))
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
  local k = math.min(math.floor(tokens), tonumber(f[3]) - admitted)
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
