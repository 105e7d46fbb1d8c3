"""The Lua shared by every script (helpers over the key layout), and how a script is built.

Scripts are constant Lua text, run with EVALSHA on KEYS and ARGV only.

Nothing from a user is ever formatted into a script. Every key a script touches hashes to
the slot of its first key (a thread and the registry bucket of its slot share it), so each
script is atomic on a cluster too. Scripts order nothing with Lua's `<` on strings (it
follows the server's locale): ranges come from Python, and the cross-thread merge compares
bytes with `cmp` below. Layout: see `_keys.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Script", "script"]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script with its SHA1, for EVALSHA."""

    name: str
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())  # noqa: S324


_PRELUDE = r"""
local END = '\0\1'
local LETTERS = {'c', 'i', 'o', 'b', 'w', 'x', 'm', 'h'}
local BK  -- the bucket's keys: threads, runs, exp (set by each script)

-- A plain find first: most values hold no NUL, and gsub costs 1 us a call against 0.16 us
-- (Redis 7.0, EVAL of 10,000 calls); a list page segments two values per blob it returns.
local function seg(v)
  if string.find(v, '\0', 1, true) then return (string.gsub(v, '%z', '\0\255')) .. END end
  return v .. END
end

-- position of the last byte of the n-th segment terminator of s (0 for n == 0)
local function after(s, n)
  local pos = 0
  for _ = 1, n do
    local a = string.find(s, END, pos + 1, true)
    if not a then return nil end
    pos = a + 1
  end
  return pos
end

local function links_of(v)
  local _, l = cmsgpack.unpack_one(v)
  return l
end

local function each_chunk(items, fn)
  for s = 1, #items, 1000 do fn(unpack(items, s, math.min(s + 999, #items))) end
end

local function hmget_all(key, fields)
  local out = {}
  for s = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, s, math.min(s + 999, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

local function blob_fields(K, l)
  local nst = string.sub(K, 1, after(K, 1))
  local cv, fields = l[4], {}
  for j = 1, #cv, 2 do fields[#fields + 1] = nst .. seg(cv[j]) .. seg(cv[j + 1]) end
  return fields
end

local function omember(K) return string.sub(K, after(K, 1) + 1) .. K end

-- Bytes of blobs a script may still return inline. Moving a value into Lua costs the server
-- about 1.6 us per KB (Redis 7.0: GET of 56 KB inside EVAL 89 us, as a plain command 5 us),
-- so past a budget a blob is returned as {field} and the client reads it with HMGET.
local INLINE = math.huge
-- Blob fields the client reads itself, by an HMGET beside the script in the same MULTI/EXEC:
-- returned as {field} without being read into Lua.
local BESIDE = {}

-- Blob fields already in this reply, by base .. field: {field, row, position} of the first
-- row (counted in calls of `row`) that returned it. A checkpoint names the blobs its parent
-- named (an unchanged channel, the segments of a long list), so a page returns each blob
-- once and later rows return that triple for the client to copy (`_backend._resolve`).
local SEEN = {}
local ROWS = 0

-- a checkpoint with its blobs and writes: {value, blobs, writes}
local function row(base, K, v)
  ROWS = ROWS + 1
  local l = links_of(v)
  local fields = blob_fields(K, l)
  local blobs, fresh, at = {}, {}, {}
  for j, f in ipairs(fields) do
    local key = base .. f
    local s = SEEN[key]
    if s then
      blobs[j] = s
    else
      SEEN[key] = {f, ROWS, j}
      fresh[#fresh + 1] = f
      at[#at + 1] = j
    end
  end
  if #fresh > 0 and INLINE == math.huge and next(BESIDE) == nil then
    local got = hmget_all(base .. 'b', fresh)
    for i, j in ipairs(at) do blobs[j] = got[i] end
  else
    for i, f in ipairs(fresh) do
      local n = BESIDE[f] or redis.call('HSTRLEN', base .. 'b', f)
      if n ~= true and n <= INLINE then
        INLINE = INLINE - n
        blobs[at[i]] = redis.call('HGET', base .. 'b', f)
      else
        blobs[at[i]] = {f}
      end
    end
  end
  local wf = redis.call('ZRANGEBYLEX', base .. 'x', '[' .. K, '(' .. K .. '\255')
  local writes = {}
  if #wf > 0 then writes = hmget_all(base .. 'w', wf) end
  return {v, blobs, writes}, l
end

local function unregister(member)
  local tid = string.sub(member, 1, after(member, 1))
  redis.call('ZREM', BK[1], member)
  redis.call('ZREM', BK[3], member)
  local rs = redis.call('ZRANGEBYLEX', BK[2], '[R' .. tid, '(R' .. tid .. '\255')
  for _, r in ipairs(rs) do
    redis.call('ZREM', BK[2], 'F' .. string.sub(r, 2 + #tid) .. member, r)
  end
end

local function wipe(base, member)
  local keys = {}
  for j, letter in ipairs(LETTERS) do keys[j] = base .. letter end
  redis.call('UNLINK', unpack(keys))  -- a big thread's memory is freed off the main thread
  unregister(member)
end

-- refresh the TTL of every key of the thread and of its bucket; forget expired threads
local function touch(base, ttl, now, member)
  redis.call('ZADD', BK[3], now + ttl / 1000, member)
  for _, letter in ipairs(LETTERS) do redis.call('PEXPIRE', base .. letter, ttl) end
  for j = 1, 3 do redis.call('PEXPIRE', BK[j], ttl) end
  local stale = redis.call('ZRANGEBYSCORE', BK[3], '-inf', now, 'LIMIT', 0, 4)
  for _, m in ipairs(stale) do
    local b = string.sub(m, after(m, 1) + 1)
    if redis.call('EXISTS', b .. 'o', b .. 'w') == 0 then
      unregister(m)
    else
      local left = redis.call('PTTL', b .. 'o')
      if left < 0 then left = redis.call('PTTL', b .. 'w') end
      if left > 0 then redis.call('ZADD', BK[3], now + left / 1000, m)
      else redis.call('ZREM', BK[3], m) end
    end
  end
end

-- a read's `touch`: a server that takes no writes (at maxmemory, or a replica) refuses the
-- renewal's first write (the ZADD, so nothing of it applies), and the read goes on without
-- it; any other error fails the read. The refusals are found by their words, which Redis 7
-- puts first and Redis 6 after the script's position ("user_script:12: -OOM ...").
local function renew(base, ttl, now, member)
  local ok, err = pcall(touch, base, ttl, now, member)
  if not ok then
    local text = type(err) == 'table' and err.err or tostring(err)
    if not (string.find(text, 'OOM command not allowed', 1, true)
            or string.find(text, "READONLY You can't write", 1, true)) then
      error(err)
    end
  end
end

-- remove a checkpoint's index entries (not the record, not its writes)
local function unindex(base, om, l)
  for _, p in ipairs(l[5]) do redis.call('ZREM', base .. 'm', p .. om) end
  redis.call('HINCRBY', base .. 'h', 's', -l[3])
end

-- delete a checkpoint with its writes; returns its links
local function drop(base, K, v)
  local l = links_of(v)
  local om = omember(K)
  redis.call('HDEL', base .. 'c', K)
  redis.call('ZREM', base .. 'i', K)
  redis.call('ZREM', base .. 'o', om)
  unindex(base, om, l)
  local lo, hi = '[' .. K, '(' .. K .. '\255'
  local wf = redis.call('ZRANGEBYLEX', base .. 'x', lo, hi)
  if #wf > 0 then
    each_chunk(wf, function(...) redis.call('HDEL', base .. 'w', ...) end)
    redis.call('ZREMRANGEBYLEX', base .. 'x', lo, hi)
  end
  return l
end

-- forget the (run, thread) pair when no checkpoint of the thread has that run any more
-- (`rs`: the run's segment)
local function release_run_seg(base, member, rs)
  local rp = END .. rs
  local left = redis.call('ZRANGEBYLEX', base .. 'm', '[' .. rp, '(' .. rp .. '\255', 'LIMIT', 0, 1)
  if #left == 0 then
    local tid = string.sub(member, 1, after(member, 1))
    redis.call('ZREM', BK[2], 'F' .. rs .. member, 'R' .. tid .. rs)
  end
end

local function release_run(base, member, run)
  release_run_seg(base, member, seg(run))
end

-- delete the blobs among `candidates` that no remaining checkpoint of `namespaces` reads
local function collect(base, namespaces, candidates)
  local live = {}
  for nst in pairs(namespaces) do
    local ks = redis.call('ZRANGEBYLEX', base .. 'i', '[' .. nst, '(' .. nst .. '\255')
    for _, K in ipairs(ks) do
      local v = redis.call('HGET', base .. 'c', K)
      if v then
        for _, f in ipairs(blob_fields(K, links_of(v))) do live[f] = true end
      end
    end
  end
  local dead = {}
  for _, f in ipairs(candidates) do
    if not live[f] then dead[#dead + 1] = f; live[f] = true end
  end
  if #dead > 0 then each_chunk(dead, function(...) redis.call('HDEL', base .. 'b', ...) end) end
end

-- after deleting `dropped` ({K = links}): blobs, run pairs, and an emptied thread.
-- `full`: consider every blob of the thread, not only those the dropped checkpoints read
-- after checkpoints were dropped: delete their blobs no remaining checkpoint reads (`full`:
-- every such blob of the thread) and forget their runs (`all_runs`: every run of the thread
-- no remaining checkpoint has, for drops of earlier calls); the thread goes when none is left
local function settle(base, member, dropped, full, all_runs)
  local namespaces, candidates, runs = {}, {}, {}
  for K, l in pairs(dropped) do
    namespaces[string.sub(K, 1, after(K, 1))] = true
    for _, f in ipairs(blob_fields(K, l)) do candidates[#candidates + 1] = f end
    if l[2] then runs[seg(l[2])] = true end
  end
  if redis.call('ZCARD', base .. 'o') == 0 then
    wipe(base, member)
    return
  end
  if full then
    candidates = redis.call('HKEYS', base .. 'b')
    for _, f in ipairs(candidates) do namespaces[string.sub(f, 1, after(f, 1))] = true end
  end
  if all_runs then
    local tid = string.sub(member, 1, after(member, 1))
    local rt = 'R' .. tid
    for _, r in ipairs(redis.call('ZRANGEBYLEX', BK[2], '[' .. rt, '(' .. rt .. '\255')) do
      runs[string.sub(r, #rt + 1)] = true
    end
  end
  collect(base, namespaces, candidates)
  for rs in pairs(runs) do release_run_seg(base, member, rs) end
end

-- a cursor over one index of one thread, newest first, applying the row filters
local function walker(base, index, skip, hi, lo, nsf, checks, batch)
  return {base = base, key = base .. index, skip = skip, hi = hi, lo = lo, nsf = nsf,
          checks = checks, batch = batch, buf = {}, pos = 1, done = false}
end

local function advance(w)
  while true do
    if w.pos > #w.buf then
      if w.done then return nil end
      w.buf = redis.call('ZREVRANGEBYLEX', w.key, w.hi, w.lo, 'LIMIT', 0, w.batch)
      w.pos = 1
      if #w.buf < w.batch then w.done = true end
      if #w.buf == 0 then return nil end
      w.hi = '(' .. w.buf[#w.buf]
      if w.batch < 512 then w.batch = w.batch * 2 end
    end
    local m = w.buf[w.pos]
    w.pos = w.pos + 1
    local K, om
    if w.skip == 0 then
      K = m
      om = omember(K)
    else
      K = string.sub(m, after(m, w.skip) + 1)
      om = string.sub(m, after(m, w.skip - 1) + 1)
    end
    local ok = w.nsf == '' or string.sub(K, 1, #w.nsf) == w.nsf
    if ok then
      for _, c in ipairs(w.checks) do
        if not redis.call('ZSCORE', w.base .. 'm', c .. om) then ok = false; break end
      end
    end
    if ok then
      local v = redis.call('HGET', w.base .. 'c', K)
      if v then return K, v end
    end
  end
end

local function checks_from(at)
  local checks = {}
  for j = 1, tonumber(ARGV[at]) do checks[j] = ARGV[at + j] end
  return checks
end

-- the fields of BESIDE, when ARGV has them at `at` (count, field*)
local function beside_from(at)
  if ARGV[at] then
    for j = 1, tonumber(ARGV[at]) do BESIDE[ARGV[at + j]] = true end
  end
end

-- byte-wise comparison (-1, 0, 1), independent of the server's locale
local function cmp(a, b)
  if a == b then return 0 end
  local n = math.min(#a, #b)
  local i = 1
  while i + 15 <= n and string.sub(a, i, i + 15) == string.sub(b, i, i + 15) do i = i + 16 end
  while i <= n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
    i = i + 1
  end
  if #a < #b then return -1 end
  return 1
end
"""

_THREAD_KEYS = "BK = {KEYS[9], KEYS[10], KEYS[11]}\n"
_BUCKET_KEYS = "BK = {KEYS[1], KEYS[2], KEYS[3]}\n"

_STORE_WRITES = r"""
local function store_writes(base, at)
  local n = tonumber(ARGV[at])
  at = at + 1
  if n == 0 then return at end
  local zargs = {}
  for _ = 1, n do
    local f, mode, val = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    -- '1': replace, '0': insert if absent, '2': stored beside the script, index only
    if mode == '1' then redis.call('HSET', base .. 'w', f, val)
    elseif mode == '0' then redis.call('HSETNX', base .. 'w', f, val) end
    zargs[#zargs + 1] = 0
    zargs[#zargs + 1] = f
    at = at + 3
  end
  each_chunk(zargs, function(...) redis.call('ZADD', base .. 'x', ...) end)
  return at
end
"""


def script(name: str, body: str, *, bucket: bool = False, writes: bool = False) -> Script:
    """A script: the shared helpers, the bucket's keys (`BK`), then `body`."""
    text = _PRELUDE + (_BUCKET_KEYS if bucket else _THREAD_KEYS)
    return Script(name, text + (_STORE_WRITES if writes else "") + body)
