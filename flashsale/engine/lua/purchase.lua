-- Decides a batch of purchases of one drop, atomically and in order.
-- ARGV: recheck (0|1), then the batch in msgpack: [[order id, buyer, quantity, idempotency
-- key ('' = none)], ...] (one argument, so packing a batch costs the gateway one call).
-- Returns a flat list: for each purchase an outcome and the msgpack order ('' if none).
--
-- The order id is the gateway's request id, so running the same request again is
-- idempotent: a gateway that lost the answer runs it again (recheck = 1) and learns what
-- was decided. If that rerun refuses, the id is voided, so a first attempt still in flight
-- can never create an order the buyer was told did not happen.
local recheck = ARGV[1] == '1'
local batch = cmsgpack.unpack(ARGV[2])
local n = #batch
local out = {}

if redis.call('EXISTS', K_DROP) == 0 then
  for i = 1, n do out[#out + 1] = 'not_found'; out[#out + 1] = '' end
  return out
end

local now = now_ms()
-- A recheck writes once, whatever it finds: with acks=replica the WAIT that follows on this
-- connection then covers every earlier write, the lost first attempt's included.
if recheck then redis.call('HSET', K_VOID, '~', now) end
local status = promote(now)
local f = redis.call('HMGET', K_DROP, 'remaining', 'sold', 'seq', 'per_buyer_limit', 'price',
  'currency', 'payment_window_s')
local remaining, sold, seq = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
local limit, price, currency, window = tonumber(f[4]), tonumber(f[5]), f[6], tonumber(f[7])

local function decide(oid, buyer, qty, key)
  local existing = redis.call('HGET', K_ORDERS, oid)
  if existing then return 'created', existing end
  if redis.call('HEXISTS', K_VOID, oid) == 1 then return 'unavailable', '' end
  local idem_field = buyer .. '\n' .. key
  if key ~= '' then
    local prev = redis.call('HGET', K_IDEM, idem_field)
    if prev then
      local packed = redis.call('HGET', K_ORDERS, prev)
      if cmsgpack.unpack(packed).quantity ~= qty then return 'idempotency_conflict', '' end
      return 'replay', packed
    end
  end
  if status ~= 'live' and status ~= 'sold_out' then return 'not_live', '' end
  if remaining < qty then return 'sold_out', '' end
  local held = tonumber(redis.call('HGET', K_BUYERS, buyer) or '0')
  if held + qty > limit then return 'limit_reached', '' end

  seq = seq + 1
  remaining = remaining - qty
  sold = sold + qty
  local order = {
    id = oid, drop_id = DROP_ID, seq = seq, buyer = buyer, quantity = qty,
    amount = price * qty, currency = currency, created_at = now,
    status = window > 0 and 'reserved' or 'confirmed',
  }
  if key ~= '' then
    order.idempotency_key = key
    redis.call('HSET', K_IDEM, idem_field, oid)
  end
  if window > 0 then
    order.expires_at = now + window * 1000
    redis.call('ZADD', K_HOLDS, order.expires_at, oid)
  end
  local packed = cmsgpack.pack(order)
  redis.call('HSET', K_ORDERS, oid, packed)
  redis.call('HINCRBY', K_BUYERS, buyer, qty)
  emit('created', packed)
  return 'created', packed
end

local created = false
for i = 1, n do
  local oid, buyer, qty, key = unpack(batch[i])
  local outcome, packed = decide(oid, buyer, qty, key)
  if outcome == 'created' and packed ~= '' then created = true end
  if recheck and packed == '' and outcome ~= 'unavailable' then
    redis.call('HSET', K_VOID, oid, now)
  end
  out[#out + 1] = outcome
  out[#out + 1] = packed
end

if created then
  redis.call('HSET', K_DROP, 'remaining', remaining, 'sold', sold, 'seq', seq)
  live_changed = true
  if remaining == 0 and status == 'live' then set_status('sold_out') end
end
publish_live()
return out
