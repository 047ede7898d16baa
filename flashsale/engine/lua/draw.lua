-- A draw drop's entries and its draw (CONTRACT "Draw"). ARGV: op, then its arguments.
--   'enter', buyer, quantity, variant ('' = none): {outcome, msgpack entry}; outcome created
--     or ok (the entry the buyer has), or a refusal with '' after it.
--   'draw', how many entries, a msgpack array of every entry's buyer in the draw's order
--     (draws.py computes it, HMAC-SHA256 needs no Lua): {outcome, winners}; outcome drawn, or
--     done (drawn before), early, not_live, changed (the entries are not those counted).
if redis.call('EXISTS', K_DROP) == 0 then return {'not_found', ''} end
local op = ARGV[1]
local now = now_ms()
local status = promote(now)
local f = redis.call('HMGET', K_DROP, 'admission', 'draws_at', 'per_buyer_limit', 'variants',
  'drawn')
if f[1] ~= 'draw' then return {'no_draw', ''} end

if op == 'enter' then
  local buyer, qty, code = ARGV[2], tonumber(ARGV[3]), ARGV[4]
  local wrong = variant_refusal(f[4], code)
  if wrong then return {wrong, ''} end
  local packed = redis.call('HGET', K_ENTRIES, buyer)
  if packed then return {'ok', packed} end
  if status ~= 'live' then return {'not_live', ''} end
  if f[5] or now >= tonumber(f[2]) then return {'entries_closed', ''} end
  if qty > tonumber(f[3]) then return {'limit_reached', ''} end
  local entry = {buyer = buyer, quantity = qty, status = 'entered', at = now}
  if code ~= '' then entry.variant = code end
  packed = cmsgpack.pack(entry)
  redis.call('HSET', K_ENTRIES, buyer, packed)
  return {'created', packed}
end

-- op == 'draw'
if f[5] then return {'done', 0} end
if status ~= 'live' and status ~= 'sold_out' then return {'not_live', 0} end
if now < tonumber(f[2]) then return {'early', 0} end
if redis.call('HLEN', K_ENTRIES) ~= tonumber(ARGV[2]) then return {'changed', 0} end
-- What each variant (or the drop) had at the draw: the audit replays the draw against it.
local stock = {}
for code in string.gmatch(f[4] or '', '%S+') do
  stock[#stock + 1] = code .. '=' .. redis.call('HGET', K_DROP, vfield(code, 'remaining'))
end
if #stock == 0 then stock[1] = '=' .. redis.call('HGET', K_DROP, 'remaining') end
redis.call('HSET', K_DROP, 'drawn', now, 'drawn_stock', table.concat(stock, ' '))
local order = cmsgpack.unpack(ARGV[3])
for rank, buyer in ipairs(order) do
  local e = cmsgpack.unpack(redis.call('HGET', K_ENTRIES, buyer))
  e.rank = rank
  e.status = 'lost'
  redis.call('HSET', K_ENTRIES, buyer, cmsgpack.pack(e))
  redis.call('ZADD', K_LINE, rank, buyer)
end
local winners = serve_line(now, math.huge, true)
live_changed = true  -- the drop now shows its seed
publish_live()
return {'drawn', winners}
