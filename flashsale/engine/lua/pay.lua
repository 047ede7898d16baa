-- Pays a reserved order. ARGV: order id, buyer.
-- Returns {outcome, msgpack order}; outcome is paid, not_found, not_payable or expired.
local packed = redis.call('HGET', K_ORDERS, ARGV[1])
if not packed then return {'not_found', ''} end
local order = cmsgpack.unpack(packed)
if order.buyer ~= ARGV[2] then return {'not_found', ''} end
if order.status == 'paid' then return {'paid', packed} end
if order.status == 'confirmed' then return {'not_payable', packed} end
if order.status ~= 'reserved' then return {'expired', packed} end

local now = now_ms()
if now >= order.expires_at then
  packed = release(order, now)
  publish_live()
  return {'expired', packed}
end
order.status = 'paid'
order.ended_at = now
packed = cmsgpack.pack(order)
redis.call('HSET', K_ORDERS, order.id, packed)
redis.call('ZREM', K_HOLDS, order.id)
append_event('paid', packed)
return {'paid', packed}
