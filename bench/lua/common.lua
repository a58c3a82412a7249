-- Shared by the benchmark's wrk scripts: randomness, UUIDs, a monotonic clock,
-- optional pacing to a fixed rate, and a summary that done() prints as one JSON line.
--
-- Settings come from the environment (the same in wrk's main and thread states):
--   BENCH_RATE        requests per second for the whole run (unset: as fast as possible)
--   BENCH_THREADS     wrk's -t, to split the rate between threads
--   BENCH_ACKED_FILE  where done() writes what each 2xx response acknowledged

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

function now_ms()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

function seed_random(salt)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f:read(4)
  f:close()
  local a, b, c, d = bytes:byte(1, 4)
  math.randomseed(((a * 256 + b) * 256 + c) * 256 + d + (salt or 0))
end

function hex(n)
  return string.format("%0" .. n .. "x", math.random(0, 16 ^ n - 1))
end

function uuid4()
  return string.format("%s%s-%s-4%s-%x%s-%s%s",
    hex(4), hex(4), hex(4), hex(3), math.random(8, 11), hex(3), hex(6), hex(6))
end

function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

-- Main state: remember the threads so done() can gather their counters.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- Thread state: counters that response() fills.
ok, non2xx, ignored = 0, 0, 0
statuses = {}
acked = {}

function count_response(status, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then
    if body and body:find('"ignored"', 1, true) then
      ignored = ignored + 1
    else
      ok = ok + 1
      return true
    end
  else
    non2xx = non2xx + 1
  end
  return false
end

-- Pacing: each thread hands out send slots 1000 * threads / rate ms apart, so the
-- run's rate holds whatever the latency, as long as a connection is free.
local rate = tonumber(os.getenv("BENCH_RATE") or "")
local interval
if rate and rate > 0 then
  interval = 1000 * tonumber(os.getenv("BENCH_THREADS") or "1") / rate
  local next_at

  function delay()
    local now = now_ms()
    if next_at == nil or next_at < now - 1000 then
      next_at = now -- start, or fell behind by more than a second: no burst to catch up
    end
    local wait = next_at - now
    next_at = next_at + interval
    return wait > 0 and wait or 0
  end
end

-- write_acked(file, acked_table) is given by each script: the format differs.
function report(summary, latency, write_acked)
  local totals = { ok = 0, non2xx = 0, ignored = 0 }
  local merged_status = {}
  local file = io.open(os.getenv("BENCH_ACKED_FILE"), "w")
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
    for status, n in pairs(thread:get("statuses")) do
      merged_status[status] = (merged_status[status] or 0) + n
    end
    write_acked(file, thread:get("acked"))
  end
  file:close()
  local parts = {}
  for status, n in pairs(merged_status) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "ok": %d, "non2xx": %d, "ignored": %d, ' ..
    '"statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, totals.ok, totals.non2xx, totals.ignored,
    table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
