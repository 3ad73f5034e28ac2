-- wrk -t1 -c32 -d10s --latency -s req.lua URL -- METHOD EXPECT [AUTHORIZATION [FORM_BODY]]
-- One fixed request, optionally with an Authorization header ("Basic ..." or "Bearer ...") and an
-- x-www-form-urlencoded body. A response is an app error when its status is not 200 or its body lacks
-- EXPECT (plain substring). Derived from shared/peer-reference/req.lua (there: Basic credentials only).
local threads = {}
function setup(thread) table.insert(threads, thread) end

local req, expect
function init(args)
  bad = 0 -- global: read back per thread in done()
  local method, headers, body = args[1], {}, nil
  expect = args[2]
  if args[3] and args[3] ~= "" then headers["Authorization"] = args[3] end
  if args[4] then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = args[4]
  end
  req = wrk.format(method, nil, headers, body)
end

function request() return req end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, expect, 1, true) then bad = bad + 1 end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + (t:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"connect_err":%d,"read_err":%d,"write_err":%d,"timeout_err":%d,"non2xx":%d,"app_errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect, e.read, e.write, e.timeout, e.status, n))
end
