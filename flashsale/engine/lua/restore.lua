-- Puts back what a compacted drop's invariants need before it reopens, from the order
-- store (compaction.py), in as many calls as it takes. ARGV[1]: the step.
--   'orders', then triples: order id, packed order, "buyer\nkey" or ''
--   'buyers', then pairs: buyer, units held by live orders (absolute: HSET)
--   'done', then the settlement consumer group: a stream to settle into, and unmarked.
-- Every step writes absolute values, so two hosts reopening at once do no harm.
if redis.call('HEXISTS', K_DROP, 'compacted') == 0 then return 0 end
local step = ARGV[1]
if step == 'orders' then
  for i = 2, #ARGV, 3 do
    redis.call('HSET', K_ORDERS, ARGV[i], ARGV[i + 1])
    if ARGV[i + 2] ~= '' then redis.call('HSET', K_IDEM, ARGV[i + 2], ARGV[i]) end
  end
elseif step == 'buyers' then
  for i = 2, #ARGV, 2 do redis.call('HSET', K_BUYERS, ARGV[i], ARGV[i + 1]) end
elseif step == 'done' then
  if redis.call('EXISTS', K_EVENTS) == 0 then
    redis.call('XGROUP', 'CREATE', K_EVENTS, ARGV[2], '0', 'MKSTREAM')
  end
  redis.call('HDEL', K_DROP, 'compacted')
end
return 1
