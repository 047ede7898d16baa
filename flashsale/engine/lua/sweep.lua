-- The engine's own clock work for one drop: opens it when its schedule comes, releases holds
-- whose payment window has ended, and on a queue drop runs the door (lines.lua `admit`).
-- ARGV: at most how many holds to release.
-- Returns {how many holds it released, 1 if the drop's draw is due (draws.py runs it)}.
if redis.call('EXISTS', K_DROP) == 0 then return {0, 0} end
local now = now_ms()
local status = promote(now)
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
local f = redis.call('HMGET', K_DROP, 'admission', 'q_shown', 'draws_at', 'drawn')
if f[1] == 'queue' then
  admit(now)
  -- joins change the waiting count without a message of their own: told from here, a few
  -- times a second at most, and only when it changed
  local shown = queue_token()
  if shown ~= f[2] then
    redis.call('HSET', K_DROP, 'q_shown', shown)
    live_changed = true
  end
end
publish_live()
local draw_due = f[1] == 'draw' and not f[4] and now >= tonumber(f[3])
  and (status == 'live' or status == 'sold_out')
return {#due, draw_due and 1 or 0}
