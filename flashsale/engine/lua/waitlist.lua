-- A first-come drop's waitlist (CONTRACT "Waitlist"). ARGV: op, buyer, then its arguments.
--   'join', buyer, quantity, variant ('' = none): {outcome, msgpack entry}; outcome created,
--     ok (the buyer's waiting entry), or a refusal with '' after it.
--   'leave', buyer: {ok, msgpack entry} or {none, ''}.
-- Units that come back reach the entries in lines.lua `serve_line`.
if redis.call('EXISTS', K_DROP) == 0 then return {'not_found', ''} end
local op, buyer = ARGV[1], ARGV[2]
local now = now_ms()
local status = promote(now)
local f = redis.call('HMGET', K_DROP, 'admission', 'payment_window_s', 'remaining',
  'per_buyer_limit', 'variants')
if (f[1] or 'first_come') ~= 'first_come' or tonumber(f[2]) == 0 then
  return {'no_waitlist', ''}
end
local packed = redis.call('HGET', K_ENTRIES, buyer)
local e = packed and cmsgpack.unpack(packed)

if op == 'leave' then
  if not e then return {'none', ''} end
  if e.status == 'waiting' then
    e.status = 'left'
    packed = cmsgpack.pack(e)
    redis.call('HSET', K_ENTRIES, buyer, packed)
    redis.call('ZREM', K_LINE, buyer)
  end
  return {'ok', packed}
end

-- op == 'join'
local qty, code = tonumber(ARGV[3]), ARGV[4]
local wrong = variant_refusal(f[5], code)
if wrong then return {wrong, ''} end
if e and e.status == 'waiting' then return {'ok', packed} end
if status ~= 'live' and status ~= 'sold_out' then return {'not_live', ''} end
local left = tonumber(f[3])
if code ~= '' then left = tonumber(redis.call('HGET', K_DROP, vfield(code, 'remaining'))) end
if left >= qty then return {'not_sold_out', ''} end
if (tonumber(redis.call('HGET', K_BUYERS, buyer)) or 0) + qty > tonumber(f[4]) then
  return {'limit_reached', ''}
end
-- a new entry (a buyer served or gone before joins again at the back)
local position = redis.call('HINCRBY', K_DROP, 'w_next', 1)
e = {buyer = buyer, quantity = qty, status = 'waiting', position = position, at = now}
if code ~= '' then e.variant = code end
packed = cmsgpack.pack(e)
redis.call('HSET', K_ENTRIES, buyer, packed)
redis.call('ZADD', K_LINE, position, buyer)
return {'created', packed}
