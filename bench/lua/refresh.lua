-- wrk -t1 -c32 -d10s --latency -s refresh.lua TOKEN_URL -- AUTHORIZATION TOKENS_FILE
-- Refresh-token grant with rotation: every refresh returns a new refresh token and kills the old one, so
-- no request can be replayed. Each wrk thread keeps a FIFO of live refresh tokens: request() takes the
-- oldest, response() puts back the one the server returned. wrk does not say which connection a
-- response belongs to, and it does not need to: a refresh token is not bound to a connection.
-- Thread N reads TOKENS_FILE.N (one refresh token a line); it should hold at least 2x its connections.
-- A response is an app error when its status is not 200 or it carries no new refresh_token; a failed
-- refresh loses its chain, and when the FIFO runs dry the request goes out with a dead token (an error).
local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local auth, queue, head, tail
function init(args)
  bad = 0
  dry = 0
  auth = args[1]
  queue, head, tail = {}, 1, 0
  local f = assert(io.open(args[2] .. "." .. tid, "r"))
  for line in f:lines() do
    if line ~= "" then tail = tail + 1; queue[tail] = line end
  end
  f:close()
end

function request()
  local token = "exhausted"
  if head <= tail then
    token = queue[head]; queue[head] = nil; head = head + 1
  else
    dry = dry + 1
  end
  return wrk.format("POST", nil, {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local token = status == 200 and string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    tail = tail + 1; queue[tail] = token
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local n, d = 0, 0
  for _, t in ipairs(threads) do n = n + (t:get("bad") or 0); d = d + (t:get("dry") or 0) end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"connect_err":%d,"read_err":%d,"write_err":%d,"timeout_err":%d,"non2xx":%d,"app_errors":%d,"pool_dry":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect, e.read, e.write, e.timeout, e.status, n, d))
end
