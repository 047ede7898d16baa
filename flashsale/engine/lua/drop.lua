-- Host operations on one drop. ARGV: op, then the op's arguments.
-- Returns the drop hash as a flat field/value list ({} if the drop does not exist).
local op = ARGV[1]
local now = now_ms()

if op == 'create' then
  -- ARGV[2]: the settlement consumer group; ARGV[3..]: field/value pairs of the new drop
  if redis.call('EXISTS', K_DROP) == 1 then return redis.error_reply('drop exists') end
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', K_DROP, unpack(fields))
  redis.call('HSET', K_DROP, 'created_at', now, 'seq', 0, 'sold', 0)
  redis.call('XGROUP', 'CREATE', K_EVENTS, ARGV[2], '0', 'MKSTREAM')
  -- an opens_at already past: live from the start; else told as pending, so that every
  -- process following the channel counts the new drop among those with work (active.py)
  if promote(now) == 'pending' then publish_status('pending') end
  return redis.call('HGETALL', K_DROP)
end

if redis.call('EXISTS', K_DROP) == 0 then return {} end
local status = promote(now)

if op == 'open' then
  -- compacted (compact.lua): its orders must be restored from the store first (restore.lua)
  if redis.call('HEXISTS', K_DROP, 'compacted') == 1 then
    return redis.error_reply('compacted')
  end
  if status == 'pending' or status == 'closed' then
    local remaining = tonumber(redis.call('HGET', K_DROP, 'remaining'))
    set_status(remaining > 0 and 'live' or 'sold_out')
  end
elseif op == 'close' then
  if status ~= 'closed' then
    set_status('closed')
    redis.call('HSET', K_DROP, 'closed_at', now)  -- retention counts from here
  end
elseif op == 'restock' then
  -- ARGV[3]: the variant ('' on a drop without; drops.py checked it fits the drop)
  local q, code = tonumber(ARGV[2]), ARGV[3]
  redis.call('HINCRBY', K_DROP, 'stock', q)
  redis.call('HINCRBY', K_DROP, 'remaining', q)
  local back = false
  if code ~= '' then
    redis.call('HINCRBY', K_DROP, vfield(code, 'stock'), q)
    back = redis.call('HINCRBY', K_DROP, vfield(code, 'remaining'), q) == q
  end
  live_changed = true
  -- a waitlist's, or a drawn draw's, entries get the units first; the rest go on sale
  if has_line() and (status == 'live' or status == 'sold_out') then
    serve_line(now, SERVE_SCAN)
    status = redis.call('HGET', K_DROP, 'status')
  end
  if status == 'sold_out' and tonumber(redis.call('HGET', K_DROP, 'remaining')) > 0 then
    set_status('live')
  elseif back and status == 'live' then
    publish_variants(status)
  end
end
publish_live()
return redis.call('HGETALL', K_DROP)
