-- wrk script: POST one signed Alipay notification, over and over.
--
--   wrk -t2 -c32 -d10s -s bench/notify.lua http://127.0.0.1:PORT/alipay/notify -- BODY_FILE
--
-- BODY_FILE holds the form body exactly as Alipay sends it (run.sh writes
-- notify.cases[0].post_body of testdata/vectors.json there); the
-- NOTIFY_BODY_FILE environment variable works too. Every request is the
-- same, already-verified notification: a replay, which both setups accept
-- (neither keeps notify_id state), so this measures verification and
-- forwarding, not business logic.
--
-- Failures show in wrk's own summary as "Non-2xx or 3xx responses": both
-- setups answer a notification they refuse with a 4xx/5xx and `fail`.

local body_file

local function read_body(path)
  local f, err = io.open(path, "rb")
  if not f then
    error("notify.lua: cannot open body file: " .. tostring(err))
  end
  local s = f:read("*a")
  f:close()
  s = s:gsub("%s+$", "")
  if #s == 0 then
    error("notify.lua: body file " .. path .. " is empty")
  end
  return s
end

function init(args)
  body_file = args[1] or os.getenv("NOTIFY_BODY_FILE")
  if not body_file then
    error("notify.lua: give the body file after --, or set NOTIFY_BODY_FILE")
  end
  wrk.method = "POST"
  wrk.body = read_body(body_file)
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
end
