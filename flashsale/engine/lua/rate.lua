-- Rate limits shared by every gateway: each adds what it admitted since its last call to
-- this window's counters and learns which clients are past their allowance.
-- KEYS[1]: one shard's counters for one window (a hash: client -> requests admitted).
-- ARGV[1]: msgpack {client, count, client, count, ...}; clients are "b:<buyer>" or "i:<ip>".
-- ARGV[2], ARGV[3]: a buyer's and an address's allowance per window; ARGV[4]: TTL seconds.
local counts = cmsgpack.unpack(ARGV[1])
local allowance = { b = tonumber(ARGV[2]), i = tonumber(ARGV[3]) }
local over = {}
for i = 1, #counts, 2 do
  local client = counts[i]
  local total = redis.call('HINCRBY', KEYS[1], client, counts[i + 1])
  if total > allowance[string.sub(client, 1, 1)] then
    over[#over + 1] = client
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return over
