-- wrk script of the static read benchmark (tools/bench/static_read.sh).
--
--   wrk -t1 -c32 -d10s --latency -s paths.lua http://127.0.0.1:PORT -- PATHS_FILE [ACCEPT_ENCODING]
--
-- Every request is a GET of the next URL path of PATHS_FILE (one absolute
-- path a line), in turn, wrapping around at the end; with several wrk
-- threads each starts at its own offset. When ACCEPT_ENCODING is given
-- (e.g. "gzip") every request carries `Accept-Encoding: ACCEPT_ENCODING`;
-- otherwise there is no Accept-Encoding header at all.
--
-- At the end it prints one line that the script parses:
--   STATIC_READ requests=N duration_us=N bytes=N rps=F mean_us=F p50_us=N p90_us=N p99_us=N max_us=N
--     errors_connect=N errors_read=N errors_write=N errors_timeout=N non_2xx_3xx=N

local threads = {}
local counter = 0

function setup(thread)
   thread:set("offset", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local paths = {}
local i = 0

function init(args)
   local file = args[1]
   if file == nil then
      error("paths.lua: give the paths file after `--`")
   end
   for line in io.lines(file) do
      if #line > 0 then
         paths[#paths + 1] = line
      end
   end
   if #paths == 0 then
      error("paths.lua: no paths in " .. file)
   end
   local enc = args[2]
   if enc ~= nil and #enc > 0 then
      wrk.headers["Accept-Encoding"] = enc
   end
   -- Spread the threads over the list (offset is set by setup()).
   local n = tonumber(offset) or 0
   i = math.floor(#paths * n / 8) % #paths
end

function request()
   i = i % #paths + 1
   return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "STATIC_READ requests=%d duration_us=%d bytes=%d rps=%.2f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d non_2xx_3xx=%d\n",
      summary.requests, summary.duration, summary.bytes,
      summary.requests / (summary.duration / 1e6),
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status))
end
