-- POST /api/track: page views of many sessions, a few per session, from a desktop browser.
--
-- Environment: BENCH_LUA_DIR, BENCH_PUBLIC_KEY, BENCH_ORIGIN (e.g. https://shop.example.com)
-- and common.lua's settings. Each request carries X-Request-ID "<session id>.<n>", which
-- the API echoes; BENCH_ACKED_FILE gets "<session id> <2xx responses>" lines.

dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local public_key = os.getenv("BENCH_PUBLIC_KEY")
local origin = os.getenv("BENCH_ORIGIN")
local user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
  .. "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
local arrivals = {
  { "/", "https://www.google.com/" },
  { "/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring", nil },
  { "/blog/attribution?gclid=Cj0KCQjw", "https://www.google.com/" },
  { "/", nil },
  { "/features", "https://news.ycombinator.com/item?id=1" },
  { "/?ref=producthunt", nil },
  { "/", "https://chatgpt.com/" },
  { "/pricing", "https://www.facebook.com/" },
}
local pages = { "/pricing", "/features", "/docs", "/blog/attribution", "/checkout", "/signup" }
local live = {} -- sessions in progress: {visitor, session, left, n, last_url}
local LIVE_SESSIONS = 32

local function new_session(returning_visitor)
  return {
    visitor = returning_visitor or uuid4(),
    session = uuid4(),
    left = math.random(1, 6),
    n = 0,
  }
end

function init(args)
  seed_random(tid)
  for i = 1, LIVE_SESSIONS do
    live[i] = new_session()
  end
end

function request()
  local i = math.random(LIVE_SESSIONS)
  local s = live[i]
  s.n = s.n + 1
  local url, referrer
  if s.n == 1 then
    local arrival = arrivals[math.random(#arrivals)]
    url, referrer = origin .. arrival[1], arrival[2]
  else
    url, referrer = origin .. pages[math.random(#pages)], s.last_url
  end
  s.last_url = url
  local body = string.format(
    '{"publicKey": "%s", "visitorId": "%s", "sessionId": "%s", "type": "pageview", ' ..
    '"url": %s, "referrer": %s}',
    public_key, s.visitor, s.session, json_string(url),
    referrer and json_string(referrer) or "null")
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = user_agent,
    ["Origin"] = origin,
    ["X-Request-ID"] = s.session .. "." .. s.n,
  }
  s.left = s.left - 1
  if s.left == 0 then
    -- One new session in five is a returning visitor.
    live[i] = new_session(math.random(5) == 1 and s.visitor or nil)
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if count_response(status, body) then
    local id = headers["x-request-id"] or headers["X-Request-ID"] or "?"
    local session = id:match("^(.*)%.%d+$") or id
    acked[session] = (acked[session] or 0) + 1
  end
end

function done(summary, latency, requests)
  report(summary, latency, function(file, counts)
    for session, n in pairs(counts) do
      file:write(session, " ", n, "\n")
    end
  end)
end
