-- wrk script for bench/profile_api.py: GET one random stored profile per request.
--
--   wrk -t1 -c16 -d30s --latency -s bench/profile-api.lua http://127.0.0.1:PORT \
--       -- TOKEN MPID_FILE /userprofile/v1/1/1/1/ "?fields=..."
--
-- Arguments after `--`: the bearer token, a file of MPIDs (one a line), the path prefix
-- the MPID is appended to, and the query string. done() prints one JSON line starting
-- with "PROFILE_API_RESULT " (latencies in microseconds); the caller parses it.

local mpids = {}
local count = 0
local prefix = ""
local query = ""
local next_thread = 0

function setup(thread)
   thread:set("thread_index", next_thread)
   next_thread = next_thread + 1
end

function init(args)
   local token, file = args[1], args[2]
   prefix, query = args[3], args[4] or ""
   for line in io.lines(file) do
      if line ~= "" then
         count = count + 1
         mpids[count] = line
      end
   end
   if count == 0 then
      error("no MPIDs in " .. file)
   end
   wrk.headers["Authorization"] = "Bearer " .. token
   math.randomseed(os.time() * 1000 + (thread_index or 0))
end

function request()
   return wrk.format("GET", prefix .. mpids[math.random(count)] .. query)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'PROFILE_API_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
         .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
