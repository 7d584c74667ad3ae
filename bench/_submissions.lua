-- wrk script for bench/submissions.py: one POST per request, its status counted.
--   BENCH_MODE=hello     POST /bench/hello {"name": ..., "count": n}
--   BENCH_MODE=generate  POST /api/images/generate, Bearer BENCH_KEY, a unique prompt
--                        per request (the result cache can never answer it)
-- done() prints one line "WRKJSON {...}" the bench reads.
local mode = os.getenv("BENCH_MODE") or "hello"
local key = os.getenv("BENCH_KEY") or ""
local tag = os.getenv("BENCH_TAG") or "run"
local threads = {}
local counter = 0
local thread_id = 0
statuses = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  statuses = {}
end

function request()
  counter = counter + 1
  if mode == "generate" then
    local body = '{"model": "flux-schnell", "inputs": {"prompt": "bench submission ' .. tag ..
      ' ' .. thread_id .. '-' .. counter .. ' lemonade stand at dusk"}, ' ..
      '"options": {"width": 512, "height": 512}}'
    return wrk.format("POST", "/api/images/generate",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
  end
  local body = '{"name": "bench ' .. thread_id .. '-' .. counter .. '", "count": ' .. counter .. '}'
  return wrk.format("POST", "/bench/hello", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    if counts then
      for k, v in pairs(counts) do merged[k] = (merged[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(merged) do table.insert(parts, string.format('"%s": %d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
    '"statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ", ")))
end
