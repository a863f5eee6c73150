-- wrk script for bench/scale.py: one batch to /v2/events per request.
--
--   wrk -t1 -c32 -d15s -s bench/events.lua http://127.0.0.1:PORT -- "Basic BASE64" USERS RUN_PREFIX
--
-- Each batch names one of USERS users (customer id scale-<RUN_PREFIX>-<n>, so a run meets
-- users of its own), carries a source_request_id unique to the run, thread and request,
-- a user attribute and three custom events (~700 bytes).
--
-- done() prints one JSON line starting with "EVENTS_RESULT " (latencies in microseconds,
-- counts of answers by status).

local BATCH = '{"environment":"production","source_request_id":"%s-%d-%d",'
   .. '"user_identities":{"customer_id":"scale-%s-%d"},'
   .. '"user_attributes":{"tier":"gold","visits":%d},'
   .. '"events":[%s]}'
local EVENT = '{"event_type":"custom_event","data":{"event_name":"%s",'
   .. '"custom_event_type":"navigation","source_message_id":"%s-%d-%d-%d",'
   .. '"custom_attributes":{"n":%d,"page":"/home"}}}'

local threads = {}
local next_thread = 0

local users = 1
local prefix = ""
local counter = 0
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
   users = tonumber(args[2])
   prefix = args[3]
   math.randomseed(os.time() * 1000 + (thread_index or 0))
end

function request()
   counter = counter + 1
   local t = thread_index or 0
   local events = {}
   for n = 1, 3 do
      local name = ({"Play", "Search", "Share"})[n]
      events[n] = string.format(EVENT, name, prefix, t, counter, n, n)
   end
   local body = string.format(
      BATCH, prefix, t, counter, prefix, math.random(0, users - 1), counter,
      table.concat(events, ","))
   return wrk.format("POST", "/v2/events", nil, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local by_status = {}
   for _, thread in ipairs(threads) do
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
      'EVENTS_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"statuses":{%s},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
         .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes, table.concat(parts, ","),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
