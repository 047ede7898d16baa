-- Decides a batch of purchases of one drop, atomically and in order.
-- ARGV: recheck (0|1), then the batch in msgpack: [[order id, buyer, quantity, idempotency
-- key ('' = none), variant ('' = none), pass ('' = none)], ...] (one argument, so packing a
-- batch costs the gateway one call). The pass is a queue drop's (its Flashsale-Pass header).
-- Returns a flat list: for each purchase an outcome and the msgpack order ('' if none).
--
-- The order ids are the gateway's request ids, so a gateway that lost the answer can run
-- the same batch again (recheck = 1) and learn what was decided. A recheck decides nothing
-- new: it finds each request's order (or, under its Idempotency-Key, an earlier one), and a
-- request with none is 'unavailable' (503: no purchase was made). A script is atomic, so
-- the first attempt ran whole or not at all, and one mark per batch (its first order id, in
-- K_VOID) makes that 503 true for good: the recheck sets it, and a first attempt arriving
-- after it finds it and decides nothing.
--
-- What Redis spends is per key, not per purchase: each hash the batch needs is read with one
-- HMGET and written with one HSET, and the batch's new orders go out as one stream entry
-- (field 'b': a msgpack array of them), whatever the batch's size. Variants too: the fields
-- of the variants the batch names ride in the drop's one HMGET, and the drop's one HSET.
local recheck = ARGV[1] == '1'
local batch = cmsgpack.unpack(ARGV[2])
local n = #batch
local out = {}

local fields = {'status', 'opens_at', 'remaining', 'sold', 'seq', 'per_buyer_limit', 'price',
  'currency', 'payment_window_s', 'compacted', 'variants', 'deposit', 'admission', 'q_admitted'}
local VFIELDS = {'price', 'deposit', 'remaining', 'sold'}  -- read of each variant named
local vat = {}  -- variant code named in the batch -> index of its first field in `fields`
local vcodes = {}  -- the same codes, in the order first named
for i = 1, n do
  local code = batch[i][5] or ''
  batch[i][5] = code
  if code ~= '' and not vat[code] then
    vat[code] = #fields + 1
    vcodes[#vcodes + 1] = code
    for _, name in ipairs(VFIELDS) do
      fields[#fields + 1] = vfield(code, name)
    end
  end
end
local f = redis.call('HMGET', K_DROP, unpack(fields))
if not f[1] then  -- no such drop
  for i = 1, n do out[2 * i - 1] = 'not_found'; out[2 * i] = '' end
  return out
end
if f[10] then  -- compacted (closed): a keyed request may be a replay, found in the store
  for i = 1, n do
    out[2 * i - 1] = batch[i][4] ~= '' and 'compacted' or (recheck and 'unavailable' or 'not_live')
    out[2 * i] = ''
  end
  return out
end

local now = now_ms()
local mark = batch[1][1]
if recheck then
  -- Also a write whatever it finds: with acks=replica the WAIT that follows on this
  -- connection then covers every earlier write, the lost first attempt's included.
  redis.call('HSET', K_VOID, mark, now)
elseif redis.call('HEXISTS', K_VOID, mark) == 1 then
  for i = 1, n do out[2 * i - 1] = 'unavailable'; out[2 * i] = '' end
  return out
end

local status = promote_from(now, f[1], f[2], f[3])
local remaining, sold, seq = tonumber(f[3]), tonumber(f[4]), tonumber(f[5])
local limit, price, currency, window = tonumber(f[6]), tonumber(f[7]), f[8], tonumber(f[9])
local deposit = tonumber(f[12])
local has_variants = f[11] and f[11] ~= ''
local open = status == 'live' or status == 'sold_out'
local admission = f[13]
local queue = admission == 'queue'
local admitted = tonumber(f[14]) or 0

-- The variants the batch names that the drop has: their price and counters, as they go.
local variants = {}
if has_variants then
  for code, at in pairs(vat) do
    if f[at] then
      variants[code] = {price = tonumber(f[at]), deposit = tonumber(f[at + 1]),
        remaining = tonumber(f[at + 2]), sold = tonumber(f[at + 3]), was = tonumber(f[at + 2])}
    end
  end
end

-- Everything the batch reads, one command per key.
local buyers, idem_fields, nkeys = {}, {}, 0
local field_of = {}  -- request i -> its "buyer\nkey" field (false: no key)
for i = 1, n do
  local req = batch[i]
  buyers[i] = req[2]
  if req[4] ~= '' then
    local field = req[2] .. '\n' .. req[4]
    nkeys = nkeys + 1
    idem_fields[nkeys] = field
    field_of[i] = field
  else
    field_of[i] = false
  end
end
local held = {}
if not recheck then  -- a recheck takes nothing, so needs no counts
  local counts = redis.call('HMGET', K_BUYERS, unpack(buyers))
  for i = 1, n do held[buyers[i]] = tonumber(counts[i]) or 0 end
end
local used = {}  -- "buyer\nkey" -> order id: Redis's, then this batch's
if nkeys > 0 then
  local prev = redis.call('HMGET', K_IDEM, unpack(idem_fields))
  for i = 1, nkeys do
    if prev[i] then used[idem_fields[i]] = prev[i] end
  end
end
local tickets = {}  -- a queue drop's: buyer -> their ticket, once admitted
if queue and not recheck then
  local found = redis.call('HMGET', K_TICKETS, unpack(buyers))
  for i = 1, n do
    if found[i] then tickets[buyers[i]] = cmsgpack.unpack(found[i]) end
  end
end
local ticket_args, spent = {}, {}  -- tickets this batch used, and their buyers
local existing = {}  -- a recheck finds what the lost first attempt made
if recheck then
  local ids = {}
  for i = 1, n do ids[i] = batch[i][1] end
  local found = redis.call('HMGET', K_ORDERS, unpack(ids))
  for i = 1, n do
    if found[i] then existing[ids[i]] = found[i] end
  end
end

local made = {}  -- order id -> packed order, of this batch
local order_args, idem_args, hold_args, packed_list = {}, {}, {}, {}
local norders, nidem, nholds = 0, 0, 0
local touched = {}
local status_new = window > 0 and 'reserved' or 'confirmed'
local expires_at = window > 0 and now + window * 1000 or nil

local function decide(oid, buyer, qty, key, field, code, pass)
  if recheck then
    local prior = existing[oid]
    if prior then return 'created', prior end
  end
  -- the request's own fault comes first, whatever state the drop is in
  local v = nil
  if has_variants then
    if code == '' then return 'variant_required', '' end
    v = variants[code]
    if not v then return 'unknown_variant', '' end
  elseif code ~= '' then
    return 'no_variants', ''
  end
  if field then
    local prev = used[field]
    if prev then
      local packed = made[prev] or existing[prev] or redis.call('HGET', K_ORDERS, prev)
      local o = cmsgpack.unpack(packed)
      if o.quantity ~= qty or (o.variant or '') ~= code then
        return 'idempotency_conflict', ''
      end
      return 'replay', packed
    end
  end
  if recheck then return 'unavailable', '' end
  if not open then return 'not_live', '' end
  if admission == 'draw' then return 'draw_only', '' end
  local t = nil
  if queue then  -- a pass of this buyer's ticket, admitted, unexpired, unused
    t = tickets[buyer]
    if not t or t.status ~= 'admitted' or t.pass ~= pass or now >= t.pass_expires_at then
      return 'not_admitted', ''
    end
  end
  if (v and v.remaining or remaining) < qty then return 'sold_out', '' end
  local h = held[buyer] + qty
  if h > limit then return 'limit_reached', '' end

  seq = seq + 1
  remaining = remaining - qty
  sold = sold + qty
  held[buyer] = h
  touched[buyer] = true
  local unit, unit_deposit = price, deposit
  if v then
    v.remaining = v.remaining - qty
    v.sold = v.sold + qty
    unit, unit_deposit = v.price, v.deposit
  end
  local order = {
    id = oid, drop_id = DROP_ID, seq = seq, buyer = buyer, quantity = qty,
    amount = (unit_deposit or unit) * qty, currency = currency, created_at = now,
    status = status_new, expires_at = expires_at,
  }
  if v then order.variant = code end
  if t then  -- the pass is used: its ticket says by which order
    t.status = 'used'
    t.order_id = oid
    t.used_at = now
    ticket_args[#ticket_args + 1] = buyer
    ticket_args[#ticket_args + 1] = cmsgpack.pack(t)
    spent[#spent + 1] = buyer
    admitted = admitted - 1
  end
  if unit_deposit then order.balance = (unit - unit_deposit) * qty end
  if field then
    order.idempotency_key = key
    used[field] = oid
    idem_args[nidem + 1] = field
    idem_args[nidem + 2] = oid
    nidem = nidem + 2
  end
  if expires_at then
    hold_args[nholds + 1] = expires_at
    hold_args[nholds + 2] = oid
    nholds = nholds + 2
  end
  local packed = cmsgpack.pack(order)
  made[oid] = packed
  order_args[2 * norders + 1] = oid
  order_args[2 * norders + 2] = packed
  norders = norders + 1
  packed_list[norders] = packed
  return 'created', packed
end

for i = 1, n do
  local req = batch[i]
  local outcome, packed = decide(req[1], req[2], req[3], req[4], field_of[i], req[5], req[6] or '')
  out[2 * i - 1] = outcome
  out[2 * i] = packed
end

if norders > 0 then
  local buyer_args = {}
  for buyer in pairs(touched) do
    buyer_args[#buyer_args + 1] = buyer
    buyer_args[#buyer_args + 1] = held[buyer]
  end
  redis.call('HSET', K_ORDERS, unpack(order_args))
  redis.call('HSET', K_BUYERS, unpack(buyer_args))
  if nidem > 0 then redis.call('HSET', K_IDEM, unpack(idem_args)) end
  if nholds > 0 then redis.call('ZADD', K_HOLDS, unpack(hold_args)) end
  append_events('created', packed_list)
  local counters = {'remaining', remaining, 'sold', sold, 'seq', seq}
  if #spent > 0 then
    redis.call('HSET', K_TICKETS, unpack(ticket_args))
    redis.call('ZREM', K_PASSES, unpack(spent))
    counters[#counters + 1] = 'q_admitted'
    counters[#counters + 1] = admitted
  end
  local variant_counts, gone = {}, false
  for _, code in ipairs(vcodes) do
    local v = variants[code]
    if v and v.remaining ~= v.was then
      counters[#counters + 1] = vfield(code, 'remaining')
      counters[#counters + 1] = v.remaining
      counters[#counters + 1] = vfield(code, 'sold')
      counters[#counters + 1] = v.sold
      variant_counts[#variant_counts + 1] = code .. '=' .. v.remaining .. '/' .. v.sold
      if v.remaining == 0 then gone = true end
    end
  end
  redis.call('HSET', K_DROP, unpack(counters))
  if remaining == 0 and status == 'live' then
    redis.call('HSET', K_DROP, 'status', 'sold_out')
    status = 'sold_out'
    publish_status(status)
  elseif gone then
    publish_variants(status)
  end
  publish_counts(remaining, sold, status, variant_counts, admission)
elseif live_changed then  -- promoted, nothing sold
  publish_counts(remaining, sold, status, nil, admission)
end
return out
