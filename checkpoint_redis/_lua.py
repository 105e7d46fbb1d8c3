"""The scripts on one thread: put, put_writes, a list page, history, heads, prune, delete.

KEYS of every script here: the thread's c i o b w x m h, then its bucket's threads runs exp
(`ThreadKeys.keys`). See `_lua_prelude.py` for the helpers and `_keys.py` for the layout.
"""

from __future__ import annotations

from ._lua_prelude import script as _script

__all__ = ["DELETE_THREAD", "HEADS", "HISTORY", "LIST", "PRUNE", "PUT", "PUT_WRITES"]

# KEYS (thread scripts): c i o b w x m h of the thread, then threads runs exp of its bucket.
# ARGV: base, ttl_ms, now, K, o-member, value, member, runF, runR, parent K or '', nblobs,
# (field, value)*, nwrites, (field, mode, value)*. With a parent K: stores nothing and returns
# 0 when that checkpoint is gone (see `Backend.put_child`).
PUT = _script(
    "put",
    r"""
local base, ttl, K, om, v, member = ARGV[1], tonumber(ARGV[2]), ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if ARGV[10] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[10]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[1], K)
local old_run
if old then
  local ol = links_of(old)
  unindex(base, om, ol)
  old_run = ol[2]
end
local l = links_of(v)
redis.call('HSET', KEYS[1], K, v)
redis.call('ZADD', KEYS[2], 0, K)
redis.call('ZADD', KEYS[3], 0, om)
local zargs = {}
for _, p in ipairs(l[5]) do zargs[#zargs + 1] = 0; zargs[#zargs + 1] = p .. om end
if #zargs > 0 then redis.call('ZADD', KEYS[7], unpack(zargs)) end
redis.call('HINCRBY', KEYS[8], 's', l[3])
local at = 12
for _ = 1, tonumber(ARGV[11]) do
  redis.call('HSETNX', KEYS[4], ARGV[at], ARGV[at + 1])
  at = at + 2
end
store_writes(base, at)
redis.call('ZADD', BK[1], 0, member)
if ARGV[8] ~= '' then redis.call('ZADD', BK[2], 0, ARGV[8], 0, ARGV[9]) end
if old_run and old_run ~= l[2] then release_run(base, member, old_run) end
if ttl > 0 then touch(base, ttl, tonumber(ARGV[3]), member) end
return 1
""",
    writes=True,
)

# ARGV: base, ttl_ms, now, member, nwrites, (field, mode, value)*
PUT_WRITES = _script(
    "put_writes",
    r"""
local base, ttl, member = ARGV[1], tonumber(ARGV[2]), ARGV[4]
store_writes(base, 5)
redis.call('ZADD', BK[1], 0, member)
if ttl > 0 then touch(base, ttl, tonumber(ARGV[3]), member) end
return 1
""",
    writes=True,
)

# ARGV: base, index, skip, hi, lo, limit, nsf, ttl_ms (refresh when > 0), now, member,
# inline budget (bytes, -1: no limit), nchecks, check*, [nbeside, beside field*]
LIST = _script(
    "list",
    r"""
local base, limit = ARGV[1], tonumber(ARGV[6])
if tonumber(ARGV[11]) >= 0 then INLINE = tonumber(ARGV[11]) end
beside_from(13 + tonumber(ARGV[12]))
local w = walker(base, ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[7], checks_from(12),
                 math.min(limit, 512))
local out = {}
while #out < limit do
  local K, v = advance(w)
  if not K then break end
  out[#out + 1] = row(base, K, v)
end
local ttl = tonumber(ARGV[8])
if ttl > 0 and #out > 0 then renew(base, ttl, tonumber(ARGV[9]), ARGV[10]) end
return out
""",
)

# ARGV: base, K, limit, ttl_ms, now, member, inline budget (bytes, -1: no limit)
HISTORY = _script(
    "history",
    r"""
local base, K, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if tonumber(ARGV[7]) >= 0 then INLINE = tonumber(ARGV[7]) end
local nst = string.sub(K, 1, after(K, 1))
local out = {}
while #out < limit do
  local v = redis.call('HGET', base .. 'c', K)
  if not v then break end
  local r, l = row(base, K, v)
  out[#out + 1] = r
  if not l[1] then break end
  K = nst .. seg(l[1])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 and #out > 0 then renew(base, ttl, tonumber(ARGV[5]), ARGV[6]) end
return out
""",
)

# ARGV: base. Returns the latest checkpoint value of each namespace.
HEADS = _script(
    "heads",
    r"""
local base, hi, out = ARGV[1], '+', {}
while true do
  local r = redis.call('ZREVRANGEBYLEX', base .. 'i', hi, '-', 'LIMIT', 0, 1)
  if #r == 0 then break end
  local nst = string.sub(r[1], 1, after(r[1], 1))
  local v = redis.call('HGET', base .. 'c', r[1])
  if v then out[#out + 1] = v end
  hi = '(' .. nst
end
return out
""",
)

# ARGV: base, member
DELETE_THREAD = _script(
    "delete_thread",
    r"""
wipe(ARGV[1], ARGV[2])
return 1
""",
)

# ARGV: base. Returns K, parent id (false for none) of every checkpoint, flat.
CHECKPOINT_KEYS = _script(
    "checkpoint_keys",
    r"""
local base, out = ARGV[1], {}
for _, K in ipairs(redis.call('ZRANGE', base .. 'i', 0, -1)) do
  local v = redis.call('HGET', base .. 'c', K)
  if v then
    out[#out + 1] = K
    out[#out + 1] = links_of(v)[1] or false
  end
end
return out
""",
)

# ARGV: base, member, budget, continued, nkeep, K*, nbound, B* (B: the member of a namespace's
# last id to delete). Drops at most `budget` checkpoints and returns 1 when there may be more:
# the caller calls again (with continued = '1'), so that no one call holds the server long.
# The call that finds no more settles, for its drops and those of the calls before: blobs no
# remaining checkpoint reads, runs no remaining checkpoint has. Until then the dropped
# checkpoints' blobs stay stored, unread: every checkpoint left reads back whole.
PRUNE = _script(
    "prune",
    r"""
local base, member, budget = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = tonumber(ARGV[5])
local keep = {}
for j = 1, n do keep[ARGV[5 + j]] = true end
local dropped, count, more = {}, 0, false
-- per bound: the namespace's members up to it, oldest first (the index orders them as byte
-- strings, so no string is compared in Lua); one stored after the caller read the thread is
-- above it. Kept members are met again by every call: the range asks for that many more.
for j = 1, tonumber(ARGV[6 + n]) do
  local B = ARGV[6 + n + j]
  local nst = string.sub(B, 1, after(B, 1))
  local limit = budget - count + n
  local ks = redis.call('ZRANGEBYLEX', base .. 'i', '[' .. nst, '[' .. B, 'LIMIT', 0, limit)
  for _, K in ipairs(ks) do
    if count == budget then break end
    if not keep[K] and not dropped[K] then
      local v = redis.call('HGET', base .. 'c', K)
      if v then dropped[K] = drop(base, K, v) else redis.call('ZREM', base .. 'i', K) end
      count = count + 1  -- an index entry without its record goes too: every call progresses
    end
  end
  if #ks == limit or count == budget then more = true; break end
end
if more then return 1 end
local continued = ARGV[4] == '1'
if count > 0 or continued then settle(base, member, dropped, true, continued) end
return 0
""",
)
