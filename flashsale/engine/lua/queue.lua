-- A buyer's ticket in a queue drop's waiting room (CONTRACT "Queue").
-- ARGV: op ('join' or 'read'), buyer.
-- Returns {outcome, status, position, pass, pass_expires_at (ms), retry_after_s}, '' where
-- a field does not apply; outcome: created, ok, or a refusal (not_found, no_queue, not_live;
-- none: a read of a buyer without a ticket), with nothing after it.
if redis.call('EXISTS', K_DROP) == 0 then return {'not_found'} end
local op, buyer = ARGV[1], ARGV[2]
local now = now_ms()
local status = promote(now)
if redis.call('HGET', K_DROP, 'admission') ~= 'queue' then return {'no_queue'} end
admit(now)  -- the door runs on every poll too: admissions keep pace with the buyers

local outcome = 'ok'
local packed = redis.call('HGET', K_TICKETS, buyer)
if not packed and not redis.call('ZSCORE', K_QUEUE, buyer) then
  if op ~= 'join' then return {'none'} end
  if status == 'closed' then return {'not_live'} end
  local score
  if status == 'pending' then
    -- Before the drop goes live every ticket gets a place keyed by the drop's secret seed:
    -- sorted by it, the pre-queue is in a uniformly random order, fixed in Redis when the
    -- ticket is taken and unknown to anyone (the seed never leaves Redis on a queue drop).
    -- Every later ticket follows, in arrival order (scores from 2 up).
    score = tonumber(string.sub(redis.sha1hex(redis.call('HGET', K_DROP, 'seed') ..
      ':queue:' .. buyer), 1, 13), 16) / 16 ^ 13
  else
    score = 1 + redis.call('HINCRBY', K_DROP, 'q_arrivals', 1)
  end
  redis.call('ZADD', K_QUEUE, score, buyer)
  outcome = 'created'
  if status == 'live' and admit(now) > 0 then  -- a door with room lets them in at once
    packed = redis.call('HGET', K_TICKETS, buyer)
  end
end
publish_live()

local function clamp(s)
  return math.max(1, math.min(30, math.ceil(s)))
end

if packed then
  local t = cmsgpack.unpack(packed)
  local tstatus = t.status
  if tstatus == 'admitted' and now >= t.pass_expires_at then tstatus = 'expired' end
  if tstatus ~= 'admitted' then return {outcome, tstatus, t.position, '', '', ''} end
  return {outcome, tstatus, t.position, t.pass, t.pass_expires_at, ''}
end
local f = redis.call('HMGET', K_DROP, 'q_popped', 'admit_per_s', 'opens_at', 'remaining')
local rank = redis.call('ZRANK', K_QUEUE, buyer)
if status == 'pending' then
  local opens = tonumber(f[3])
  return {outcome, 'waiting', '', '', '', opens and clamp((opens - now) / 1000) or 5}
end
local position = (tonumber(f[1]) or 0) + rank + 1
if tonumber(f[4]) <= 0 then  -- nothing remains: told at once, back to waiting if units return
  return {outcome, 'sold_out', position, '', '', 10}
end
return {outcome, 'waiting', position, '', '', clamp((rank + 1) / tonumber(f[2]))}
