-- The engine's own clock work for one drop: opens it when its schedule comes and releases
-- holds whose payment window has ended. ARGV: at most how many holds to release.
-- Returns how many holds it released.
if redis.call('EXISTS', K_DROP) == 0 then return 0 end
local now = now_ms()
promote(now)
local due = redis.call('ZRANGEBYSCORE', K_HOLDS, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, oid in ipairs(due) do
  local packed = redis.call('HGET', K_ORDERS, oid)
  local order = packed and cmsgpack.unpack(packed)
  if order and order.status == 'reserved' then
    release(order, now)
  else
    redis.call('ZREM', K_HOLDS, oid)
  end
end
publish_live()
return #due
