-- wrk script for bench/identify.py: one IDSync identify call per request.
--
--   wrk -t1 -c16 -d30s -s bench/identify.lua http://127.0.0.1:PORT \
--       -- "Basic BASE64" /v1/identify USERS NEW_SHARE RUN_PREFIX PAUSE_MS
--
-- Arguments after `--`: the Authorization header value, the path, the number of seeded
-- users (customer ids user-0 .. user-(USERS-1), emails user<N>@example.com, as
-- bench/common.py batch_body seeds them), the share of calls (0..1) for a new user, and
-- a prefix unique to the run. A call for a known user names a random seeded user; a call
-- for a new user names bench-new-<RUN_PREFIX>-<thread>-<counter>, unique across threads
-- and (with a fresh prefix) across runs, so each creates a profile.
--
-- done() prints one JSON line starting with "IDENTIFY_RESULT " (latencies in
-- microseconds, counts of calls sent per kind and of answers other than 200).

local KNOWN = '{"environment":"production","known_identities":'
   .. '{"customerid":"user-%d","email":"user%d@example.com"}}'
local NEW = '{"environment":"production","known_identities":'
   .. '{"customerid":"bench-new-%s-%d-%d","email":"bench-new-%s-%d-%d@example.com"}}'

local threads = {}
local next_thread = 0

-- per thread (each wrk thread has its own Lua state)
local path = "/v1/identify"
local users = 0
local new_share = 0.0
local prefix = ""
local counter = 0
local pause_ms = 0
-- globals: done() reads them from each thread's state with thread:get
known_sent = 0
new_sent = 0
non_200 = 0
statuses = {}

function setup(thread)
   thread:set("thread_index", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

function init(args)
   wrk.method = "POST"
   wrk.headers["Authorization"] = args[1]
   wrk.headers["Content-Type"] = "application/json"
   path = args[2]
   users = tonumber(args[3])
   new_share = tonumber(args[4])
   prefix = args[5]
   pause_ms = tonumber(args[6] or "0") or 0
   if users == nil or users < 1 then
      error("the number of seeded users must be at least 1")
   end
   math.randomseed(os.time() * 1000 + (thread_index or 0))
end

-- With a pause, each connection waits that long before its next call: a paced load.
function delay()
   return pause_ms
end

function request()
   local body
   if new_share > 0 and math.random() < new_share then
      counter = counter + 1
      new_sent = new_sent + 1
      local t = thread_index or 0
      body = string.format(NEW, prefix, t, counter, prefix, t, counter)
   else
      known_sent = known_sent + 1
      local n = math.random(0, users - 1)
      body = string.format(KNOWN, n, n)
   end
   return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
   if status ~= 200 then
      non_200 = non_200 + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local known, new, bad = 0, 0, 0
   local by_status = {}
   for _, thread in ipairs(threads) do
      known = known + thread:get("known_sent")
      new = new + thread:get("new_sent")
      bad = bad + thread:get("non_200")
      local seen = thread:get("statuses")
      for status, count in pairs(seen) do
         by_status[status] = (by_status[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(by_status) do
      table.insert(parts, string.format('"%d":%d', status, count))
   end
   local e = summary.errors
   io.write(string.format(
      'IDENTIFY_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"known_sent":%d,"new_sent":%d,"non_200":%d,"statuses":{%s},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
         .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      known, new, bad, table.concat(parts, ","),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
