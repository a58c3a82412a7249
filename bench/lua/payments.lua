-- POST /api/payments/manual with unique, valid payments (also aimed at the baseline app).
--
-- Environment: BENCH_LUA_DIR, BENCH_KEY (secret key), BENCH_WEBSITE_ID, BENCH_PREFIX
-- (unique per run), BENCH_SESSIONS_FILE (optional: "visitor_id session_id" lines of
-- recorded sessions, which three payments in four name), and common.lua's settings.
-- Every 2xx response's provider_payment_id is written to BENCH_ACKED_FILE.

dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local website_id = os.getenv("BENCH_WEBSITE_ID")
local prefix = os.getenv("BENCH_PREFIX")
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
}
local amounts = { "4900", "1900", "9900", "49.99", "129", "0" }
local plans = { "starter", "pro", "team" }
local journeys = {}
local counter = 0

function init(args)
  seed_random(tid)
  local path = os.getenv("BENCH_SESSIONS_FILE")
  if path and path ~= "" then
    for line in io.lines(path) do
      local visitor, session = line:match("^(%S+)%s+(%S+)$")
      if visitor then
        table.insert(journeys, { visitor, session })
      end
    end
  end
end

function request()
  counter = counter + 1
  local visitor, session
  if #journeys > 0 and math.random(4) > 1 then
    local pick = journeys[math.random(#journeys)]
    visitor, session = pick[1], pick[2]
  else
    visitor, session = uuid4(), uuid4()
  end
  local body = string.format(
    '{"website_id": "%s", "amount": %s, "currency": "USD", "provider_payment_id": "%s-%d-%d", ' ..
    '"visitor_id": "%s", "session_id": "%s", "customer_email": "buyer%d@example.com", ' ..
    '"provider": "manual", "status": "paid", "paid_at": "%s", ' ..
    '"metadata": {"checkout": "custom", "plan": "%s"}}',
    website_id, amounts[math.random(#amounts)], prefix, tid, counter, visitor, session,
    math.random(1, 1000000), os.date("!%Y-%m-%dT%H:%M:%SZ"), plans[math.random(#plans)])
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if count_response(status, body) then
    local id = body:match('"provider_payment_id":%s*"([^"]+)"')
    table.insert(acked, id or "?")
  end
end

function done(summary, latency, requests)
  report(summary, latency, function(file, ids)
    for _, id in ipairs(ids) do
      file:write(id, "\n")
    end
  end)
end
