-- Shared by every script; scripts.py prepends it. KEYS are always DropKeys, in its order.
-- scripts.py also prepends STATUS_CHANNEL and LIVE_CHANNEL, from keys.py.
local K_DROP, K_BUYERS, K_IDEM, K_ORDERS, K_EVENTS, K_HOLDS, K_VOID =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local K_QUEUE, K_TICKETS, K_PASSES, K_ENTRIES, K_LINE = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local DROP_ID = string.match(K_DROP, '{(.-)}')

-- Redis's clock is the only clock: holds and schedules never depend on a gateway's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Every gateway answers purchases of a sold-out or closed drop without asking Redis, so
-- every change of status is published: a restock or a reopen reaches them at once.
-- Whether this script changed what /live shows (remaining, sold, status).
local live_changed = false

local function publish_status(status)
  redis.call('PUBLISH', STATUS_CHANNEL, DROP_ID .. ' ' .. status)
  live_changed = true
end

local function set_status(status)
  redis.call('HSET', K_DROP, 'status', status)
  publish_status(status)
end

-- A variant's field in the drop hash (models.py variant_field spells it alike).
local function vfield(code, name)
  return 'v:' .. code .. ':' .. name
end

-- A variant selling out, or coming back, changes what every gateway may refuse without
-- Redis (status_feed.py): "<drop> <status> variants" tells them to read the drop again.
local function publish_variants(status)
  redis.call('PUBLISH', STATUS_CHANNEL, DROP_ID .. ' ' .. status .. ' variants')
end

-- Once per script, at its end: the drop's counters for every gateway's /live viewers. One
-- message per script call, so a batch of purchases is one message, never one per tap:
-- "<remaining> <sold> <status>", then "<code>=<remaining>/<sold>" for each variant whose
-- counters this script changed (or all of them); the viewers' copy merges them (live.py).
-- A queue drop's waiting room, as /live shows it: "q=<waiting>/<admitted>".
local function queue_token()
  return 'q=' .. redis.call('ZCARD', K_QUEUE) .. '/' ..
    (redis.call('HGET', K_DROP, 'q_admitted') or 0)
end

-- `admission`: the drop's, which the caller has read already (a queue drop's message also
-- carries its waiting room).
local function publish_counts(remaining, sold, status, variant_counts, admission)
  local msg = remaining .. ' ' .. sold .. ' ' .. status
  if variant_counts and #variant_counts > 0 then
    msg = msg .. ' ' .. table.concat(variant_counts, ' ')
  end
  if admission == 'queue' then msg = msg .. ' ' .. queue_token() end
  redis.call('PUBLISH', LIVE_CHANNEL .. DROP_ID, msg)
end

-- Every variant's counters, as publish_counts takes them (none on a drop without).
local function all_variant_counts()
  local listed = redis.call('HGET', K_DROP, 'variants')
  local out = {}
  if not listed or listed == '' then return out end
  local codes, names = {}, {}
  for code in string.gmatch(listed, '%S+') do
    codes[#codes + 1] = code
    names[#names + 1] = vfield(code, 'remaining')
    names[#names + 1] = vfield(code, 'sold')
  end
  local c = redis.call('HMGET', K_DROP, unpack(names))  -- one read for all of them
  for i, code in ipairs(codes) do
    out[i] = code .. '=' .. c[2 * i - 1] .. '/' .. c[2 * i]
  end
  return out
end

local function publish_live()
  if not live_changed then return end
  local f = redis.call('HMGET', K_DROP, 'remaining', 'sold', 'status', 'admission')
  publish_counts(f[1], f[2], f[3], all_variant_counts(), f[4])
end

-- A pending drop whose opens_at has passed is live; every script sees that at once,
-- whether or not the sweeper has got there yet. `promote_from` takes the fields a script
-- has read already.
local function promote_from(now, status, opens_at, remaining)
  if status == 'pending' and opens_at and opens_at ~= '' and now >= tonumber(opens_at) then
    status = tonumber(remaining) > 0 and 'live' or 'sold_out'
    set_status(status)
  end
  return status
end

local function promote(now)
  local f = redis.call('HMGET', K_DROP, 'status', 'opens_at', 'remaining')
  return promote_from(now, f[1], f[2], f[3])
end

-- The drop's stream (K_EVENTS), read by the settlement workers. An entry is one order
-- ('o': msgpack) or, for a batch of purchases, all of its orders ('b': a msgpack array of
-- them, its header followed by the packed orders as they are), so a batch costs one entry.
local function append_event(kind, packed)
  redis.call('XADD', K_EVENTS, '*', 't', kind, 'o', packed)
end

local function append_events(kind, packed_list)
  local n = #packed_list
  local head
  if n < 16 then
    head = string.char(0x90 + n)
  elseif n < 65536 then
    head = string.char(0xdc, math.floor(n / 256), n % 256)
  else
    head = string.char(0xdd, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
      math.floor(n / 256) % 256, n % 256)
  end
  redis.call('XADD', K_EVENTS, '*', 't', kind, 'b', head .. table.concat(packed_list))
end
