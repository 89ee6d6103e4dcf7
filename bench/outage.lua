-- wrk script for bench/outage.py: like lookup.lua (rotate over the request paths in the file
-- given as the first script argument, bearer token from $BENCH_TOKEN), and also tally every
-- answer by HTTP code, answer status, source and degraded flag, so the bench can say what was
-- served during an outage, not only how much. The tally reads the first `"status":`,
-- `"source":` and `"degraded":` of each body (the answer's own fields come first; nested
-- objects carry none of these names). One machine-readable line at the end.

local next_id = 0
local threads = {}

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

local requests_ = {}
local counter = 0
tally = {}

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
  counter = ((id or 0) * 7919) % #requests_
end

function request()
  counter = counter % #requests_ + 1
  return requests_[counter]
end

function response(status, headers, body)
  local answer = "-"
  local source = "-"
  local degraded = "-"
  if body ~= nil then
    answer = string.match(body, '"status":%s*"([%w_]+)"') or "-"
    source = string.match(body, '"source":%s*"([%w_]+)"') or "-"
    degraded = string.match(body, '"degraded":%s*(%a+)') or "-"
  end
  local key = status .. " " .. answer .. " " .. source .. " " .. degraded
  tally[key] = (tally[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("tally")
    if counts ~= nil then
      for key, n in pairs(counts) do
        merged[key] = (merged[key] or 0) + n
      end
    end
  end
  local parts = {}
  for key, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%s": %d', key, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "tally": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", ")))
end
