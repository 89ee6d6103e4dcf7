-- wrk script for bench/lookup.py: rotate over the request paths in the file given as the
-- first script argument (`wrk ... -s lookup.lua URL -- PATHS_FILE`), send the bearer token
-- from $BENCH_TOKEN when set, and print one machine-readable summary line at the end.
-- Requests are formatted once in init(), so the load generator does little work per request.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local requests_ = {}
local counter = 0

function init(args)
  local token = os.getenv("BENCH_TOKEN")
  if token ~= nil and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if #line > 0 then
      requests_[#requests_ + 1] = wrk.format("GET", line)
    end
  end
  file:close()
  assert(#requests_ > 0, "no request paths in " .. args[1])
  -- Threads start at different places in the list.
  counter = ((id or 0) * 7919) % #requests_
end

function request()
  counter = counter % #requests_ + 1
  return requests_[counter]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
