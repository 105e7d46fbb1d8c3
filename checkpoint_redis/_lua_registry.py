"""Scripts over one registry bucket: the threads of one slot (or of a standalone server).

Each runs on the bucket's keys (`threads`, `runs`, `exp`) and on the keys of the threads the
bucket lists, which hash to the same slot. Used for what spans threads: listing across
threads, `list_threads`, `delete_runs`, dropping a whole prefix.
"""

from __future__ import annotations

from ._lua_prelude import Script
from ._lua_prelude import script as _script

__all__ = ["DELETE_RUNS", "DROP_BUCKET", "FETCH", "LEASE", "SCAN", "SCHEMA", "THREADS"]

# Merge the threads of a bucket, newest first, with a max-heap on sort keys
# seg(cid) + seg(thread) + seg(ns) compared byte-wise.
# ARGV: index, skip, hi_before, hi_same, hi_after, lo, seg(cursor thread) or '', limit, nsf,
# keys_only ('1': return {sort key, base, K} instead of rows), nchecks, check*
SCAN = _script(
    "scan",
    r"""
local index, skip, lo, ctid = ARGV[1], tonumber(ARGV[2]), ARGV[6], ARGV[7]
local limit, nsf, keys_only = tonumber(ARGV[8]), ARGV[9], ARGV[10] == '1'
local checks = checks_from(11)

local heap = {}
local function up(j)
  while j > 1 do
    local p = math.floor(j / 2)
    if cmp(heap[p].sk, heap[j].sk) >= 0 then break end
    heap[p], heap[j] = heap[j], heap[p]
    j = p
  end
end
local function down(j)
  local n = #heap
  while true do
    local l, r, m = 2 * j, 2 * j + 1, j
    if l <= n and cmp(heap[l].sk, heap[m].sk) > 0 then m = l end
    if r <= n and cmp(heap[r].sk, heap[m].sk) > 0 then m = r end
    if m == j then break end
    heap[m], heap[j] = heap[j], heap[m]
    j = m
  end
end
local function load(w)
  local K, v = advance(w)
  if not K then return false end
  local cut = after(K, 1)
  w.K, w.v = K, v
  w.sk = string.sub(K, cut + 1) .. w.tid .. string.sub(K, 1, cut)
  return true
end

for _, member in ipairs(redis.call('ZRANGE', BK[1], 0, -1)) do
  local cut = after(member, 1)
  local tid = string.sub(member, 1, cut)
  local hi = ARGV[4]
  if ctid ~= '' then
    local c = cmp(tid, ctid)
    if c < 0 then hi = ARGV[3] elseif c > 0 then hi = ARGV[5] end
  end
  local w = walker(string.sub(member, cut + 1), index, skip, hi, lo, nsf, checks,
                   math.min(limit, 16))
  w.tid = tid
  if load(w) then
    heap[#heap + 1] = w
    up(#heap)
  end
end

local out = {}
while #out < limit and #heap > 0 do
  local w = heap[1]
  if keys_only then out[#out + 1] = {w.sk, w.base, w.K}
  else out[#out + 1] = row(w.base, w.K, w.v) end
  if not load(w) then
    heap[1] = heap[#heap]
    heap[#heap] = nil
  end
  if #heap > 0 then down(1) end
end
return out
""",
    bucket=True,
)

# ARGV: (base, K)*. Rows in the same order; false where the checkpoint is gone.
FETCH = _script(
    "fetch",
    r"""
local out = {}
for j = 1, #ARGV, 2 do
  local v = redis.call('HGET', ARGV[j] .. 'c', ARGV[j + 1])
  if v then out[#out + 1] = row(ARGV[j], ARGV[j + 1], v) else out[#out + 1] = false end
end
return out
""",
    bucket=True,
)

# ARGV: seg(run_id)*. Deletes the checkpoints of these runs in the bucket's threads.
# Each thread is settled once, after all its runs: settling reads every checkpoint of the
# thread, so once per run made a call with many runs quadratic in the thread's length.
DELETE_RUNS = _script(
    "delete_runs",
    r"""
local total, order, threads = 0, {}, {}
for j = 1, #ARGV do
  local runT = ARGV[j]
  local rp = END .. runT
  for _, f in ipairs(redis.call('ZRANGEBYLEX', BK[2], '[F' .. runT, '(F' .. runT .. '\255')) do
    local member = string.sub(f, 2 + #runT)
    local cut = after(member, 1)
    local t = threads[member]
    if not t then
      t = {base = string.sub(member, cut + 1), dropped = {}, any = false}
      threads[member] = t
      order[#order + 1] = member
    end
    for _, m in ipairs(redis.call('ZRANGEBYLEX', t.base .. 'm', '[' .. rp, '(' .. rp .. '\255')) do
      local K = string.sub(m, after(m, 3) + 1)
      local v = redis.call('HGET', t.base .. 'c', K)
      if v then
        t.dropped[K] = drop(t.base, K, v)
        t.any = true
        total = total + 1
      end
    end
    redis.call('ZREM', BK[2], f, 'R' .. string.sub(member, 1, cut) .. runT)
  end
end
for _, member in ipairs(order) do
  local t = threads[member]
  if t.any then settle(t.base, member, t.dropped, false, false) end
end
return total
""",
    bucket=True,
)

# ARGV: lower bound on members, limit.
# Returns {member, checkpoint count, latest checkpoint value, size, {seg(ns)*}} per thread;
# for a thread holding writes and no checkpoint, {member, 0, seg(newest checkpoint id its
# writes name), false, {seg(ns)*}}.
THREADS = _script(
    "threads",
    r"""
local lo, limit, out = ARGV[1], tonumber(ARGV[2]), {}
-- the memory of the thread's keys (exact: SAMPLES 0 visits every field, sizes only); false
-- where MEMORY is refused (renamed away by a provider, or not in the user's ACL)
local function memory(base)
  local total = 0
  for _, s in ipairs(LETTERS) do
    local got = redis.pcall('MEMORY', 'USAGE', base .. s, 'SAMPLES', '0')
    if type(got) == 'table' and got.err then return false end
    total = total + (got or 0)
  end
  return total
end
while #out < limit do
  local ms = redis.call('ZRANGEBYLEX', BK[1], lo, '+', 'LIMIT', 0, limit)
  for _, member in ipairs(ms) do
    local base = string.sub(member, after(member, 1) + 1)
    local n = redis.call('ZCARD', base .. 'o')
    if n > 0 then
      local last = redis.call('ZREVRANGE', base .. 'o', 0, 0)[1]
      local v = redis.call('HGET', base .. 'c', string.sub(last, after(last, 1) + 1))
      local nss, hi = {}, '+'
      while true do
        local r = redis.call('ZREVRANGEBYLEX', base .. 'i', hi, '-', 'LIMIT', 0, 1)
        if #r == 0 then break end
        local nst = string.sub(r[1], 1, after(r[1], 1))
        nss[#nss + 1] = nst
        hi = '(' .. nst
      end
      out[#out + 1] = {member, n, v or false, memory(base), nss}
      if #out == limit then break end
    else
      -- writes and no checkpoint (theirs was deleted): their namespaces, and in place of
      -- the latest record the segment of the newest checkpoint id they name
      local nss, hi, newest = {}, '+', nil
      while true do
        local r = redis.call('ZREVRANGEBYLEX', base .. 'x', hi, '-', 'LIMIT', 0, 1)
        if #r == 0 then break end
        local cut = after(r[1], 1)
        local nst, cid = string.sub(r[1], 1, cut), string.sub(r[1], cut + 1, after(r[1], 2))
        nss[#nss + 1] = nst
        if newest == nil or cid > newest then newest = cid end
        hi = '(' .. nst
      end
      if newest ~= nil then
        out[#out + 1] = {member, 0, newest, memory(base), nss}
        if #out == limit then break end
      end
    end
  end
  if #ms < limit then break end
  lo = '(' .. ms[#ms]
end
return out
""",
    bucket=True,
)

# Delete every thread of the bucket, then the bucket.
DROP_BUCKET = _script(
    "drop_bucket",
    r"""
local ms = redis.call('ZRANGE', BK[1], 0, -1)
for _, member in ipairs(ms) do wipe(string.sub(member, after(member, 1) + 1), member) end
redis.call('DEL', BK[1], BK[2], BK[3])
return #ms
""",
    bucket=True,
)

# KEYS: schema key. ARGV: expected version, new version. Returns the version found.
SCHEMA = Script(
    "schema",
    r"""
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur == tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[2]) end
return cur
""",
)

# KEYS: the prefix's leases hash (name -> "<end, ms of the server's clock> <holder>").
# ARGV: name, holder, milliseconds. Returns 1 when taken (free, ended, or the holder's own).
# The hash lives as long as its longest lease.
LEASE = Script(
    "lease",
    r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local cut = string.find(cur, ' ', 1, true)
  if cut and tonumber(string.sub(cur, 1, cut - 1)) > now
      and string.sub(cur, cut + 1) ~= ARGV[2] then
    return 0
  end
end
local ms = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now + ms) .. ' ' .. ARGV[2])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('PEXPIRE', KEYS[1], ms) end
return 1
""",
)
