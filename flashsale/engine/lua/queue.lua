-- Buyers' tickets in a queue drop's waiting room (CONTRACT "Queue").
-- ARGV: 'join', buyer: takes the buyer's ticket if they have none;
--       'read', buyer, buyer...: reads each one's (a batch of polls: one call per tick).
-- Returns an outcome for the call (join: created, ok, or a refusal: not_found, no_queue,
-- not_live; read: ok, not_found or no_queue), then for each buyer named: status, position,
-- pass, pass_expires_at (ms), retry_after_s ('' where one does not apply; status `none`:
-- a read of a buyer without a ticket). A refusal has nothing after it.
if redis.call('EXISTS', K_DROP) == 0 then return {'not_found'} end
local op = ARGV[1]
local now = now_ms()
local status = promote(now)
if redis.call('HGET', K_DROP, 'admission') ~= 'queue' then return {'no_queue'} end

local out = {'ok'}
if op == 'join' then
  local buyer = ARGV[2]
  if not redis.call('HGET', K_TICKETS, buyer) and not redis.call('ZSCORE', K_QUEUE, buyer) then
    if status == 'closed' then return {'not_live'} end
    local score
    if status == 'pending' then
      -- Before the drop goes live every ticket gets a place keyed by the drop's secret
      -- seed: sorted by it, the pre-queue is in a uniformly random order, fixed in Redis
      -- when the ticket is taken and unknown to anyone (a queue drop's seed never leaves
      -- Redis). Every later ticket follows, in arrival order (scores from 2 up).
      score = tonumber(string.sub(redis.sha1hex(redis.call('HGET', K_DROP, 'seed') ..
        ':queue:' .. buyer), 1, 13), 16) / 16 ^ 13
    else
      score = 1 + redis.call('HINCRBY', K_DROP, 'q_arrivals', 1)
    end
    redis.call('ZADD', K_QUEUE, score, buyer)
    out[1] = 'created'
  end
end
-- The door runs on every call too, after a join (a door with room lets the newcomer in at
-- once): admissions keep pace with the buyers while nobody else runs it.
admit(now)
publish_live()

local function clamp(s)
  return math.max(1, math.min(30, math.ceil(s)))
end

local f = redis.call('HMGET', K_DROP, 'q_popped', 'admit_per_s', 'opens_at', 'remaining')
local popped, rate, opens, left = tonumber(f[1]) or 0, tonumber(f[2]), tonumber(f[3]),
  tonumber(f[4])

-- One buyer's ticket: status, position, pass, pass_expires_at, retry_after_s.
local function view(buyer)
  local packed = redis.call('HGET', K_TICKETS, buyer)
  if packed then
    local t = cmsgpack.unpack(packed)
    if t.status == 'admitted' and now < t.pass_expires_at then
      return 'admitted', t.position, t.pass, t.pass_expires_at, ''
    end
    return (t.status == 'admitted' and 'expired' or t.status), t.position, '', '', ''
  end
  local rank = redis.call('ZRANK', K_QUEUE, buyer)
  if not rank then return 'none', '', '', '', '' end
  if status == 'pending' then
    return 'waiting', '', '', '', opens and clamp((opens - now) / 1000) or 5
  end
  if left <= 0 then  -- nothing remains: told at once, back to waiting if units return
    return 'sold_out', popped + rank + 1, '', '', 10
  end
  return 'waiting', popped + rank + 1, '', '', clamp((rank + 1) / rate)
end

for i = 2, #ARGV do
  local a, b, c, d, e = view(ARGV[i])
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = a, b, c, d, e
end
return out
