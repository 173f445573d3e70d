#!/usr/bin/env bash
# Smoke test of one demo shop on its own, without Caddy: it plays the
# sidecar's part by making X-Alipay-Token headers itself (HS256 with the
# shared secret, as the README's Python snippet signs).
#
#   bash examples/smoke_test.sh python
#   bash examples/smoke_test.sh php
#   bash examples/smoke_test.sh django
#   bash examples/smoke_test.sh django legacy    # or SMOKE_PROTOCOL=legacy
#
# Starts the shop on a free loopback port with a temporary database, and a
# fake of the sidecar's API (POST /alipay/api/alipay.trade.refund) on another,
# runs the checks, stops both. Exits non-zero if any check fails. Refunds are
# followed by the notification Alipay sends after one (refund_fee, out_biz_no),
# which the shop must record and never take for a payment.
#
# The legacy flavour plays a sidecar set up for the legacy protocol (即时到账,
# partner and MD5): the shop is configured with a partner id, and the tokens
# carry it as aud, a claim "protocol": "legacy" and the callback's total_fee
# (not total_amount); TRADE_FINISHED alone must pay. Its refund button calls
# POST /alipay/api/refund_fastpay_by_platform_nopwd, and the order turns
# refunded only when the batch_refund_notify says SUCCESS for its trade_no.
#
# Needs bash, curl, python3 (and php with pdo_sqlite for the PHP shop; for
# the Django shop Debian's python3-django, run with /usr/bin/python3 or
# $DJANGO_PYTHON).
set -uo pipefail

lang=${1:-}
protocol=${2:-${SMOKE_PROTOCOL:-openapi}}
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: bash examples/smoke_test.sh python|php|django [openapi|legacy]"
case $lang in
  python | php | django) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
case $protocol in
  openapi) ;;
  legacy)
    if [ "$lang" != django ]; then
      echo "the legacy flavour is for the django shop: the $lang shop speaks the OpenAPI protocol only" >&2
      exit 2
    fi ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
django_python=${DJANGO_PYTHON:-/usr/bin/python3}
if [ "$lang" = django ] && ! "$django_python" -c 'import django' 2>/dev/null; then
  echo "$django_python has no Django: apt-get install python3-django (or set DJANGO_PYTHON)" >&2
  exit 2
fi

tmp=$(mktemp -d)
pid=
apipid=
cleanup() {
  local status=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  if [ -n "$apipid" ]; then kill "$apipid" 2>/dev/null; wait "$apipid" 2>/dev/null; fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

export SHOP_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
if [ "$protocol" = legacy ]; then
  export ALIPAY_APP_ID=2088101122136241  # the partner id: Caddy's partner, the legacy tokens' aud
  export SMOKE_PROTOCOL_CLAIM=legacy     # tok.py adds "protocol": "legacy" to every token
  other_aud=2088000000000002
  AMT=total_fee                          # the legacy callback's amount field
else
  export ALIPAY_APP_ID=2021000000000001
  export SMOKE_PROTOCOL_CLAIM=
  other_aud=2021000000000002
  AMT=total_amount
fi
export SHOP_DB=$tmp/shop.db
export SHOP_PAY_TTL=600
export PYTHONDONTWRITEBYTECODE=1

# The fake sidecar API: checks the bearer JWT (HS256 with the secret, exp at
# most 10 minutes ahead, as Caddy does), logs each call to api.log, and
# answers alipay.trade.refund as Alipay does: fund_change Y the first time for
# an out_request_no, N after. Orders listed in api502 get a 502 {"error"},
# those in api40004 a business failure. In the legacy flavour it serves
# refund_fastpay_by_platform_nopwd instead, with the sidecar's checks of
# batch_no (today's date in China Standard Time, then 3 to 24 letters or
# digits, not 000) and refunds: is_success T the first time for a batch_no,
# F DUPLICATE_BATCH_NO after (Alipay takes a batch once); trade_nos listed
# in api502 get a 502, those in apiF is_success F.
cat >"$tmp/fake_api.py" <<'PY'
import base64, datetime, hashlib, hmac, json, os, re, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
tmp, secret = sys.argv[1], os.environ["SHOP_SECRET"]
legacy = os.environ.get("SMOKE_PROTOCOL_CLAIM") == "legacy"
seen, lock = set(), threading.Lock()
CHINA = datetime.timezone(datetime.timedelta(hours=8))

def b64d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def listed(name, no):
    try: return no in open(os.path.join(tmp, name)).read().split()
    except FileNotFoundError: return False

def token_ok(auth):
    try:
        head, body, sig = auth.removeprefix("Bearer ").split(".")
        mac = base64.urlsafe_b64encode(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()).rstrip(b"=")
        exp = json.loads(b64d(body))["exp"]
        return (auth.startswith("Bearer ") and hmac.compare_digest(mac, sig.encode())
                and json.loads(b64d(body)).get("scope") == "api"
                and json.loads(b64d(head))["alg"] == "HS256" and time.time() < exp <= time.time() + 600)
    except Exception:
        return False

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self, code, doc):
        b = json.dumps(doc).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try: biz = json.loads(raw)
        except ValueError: biz = None
        ok = token_ok(self.headers.get("Authorization", ""))
        with lock, open(os.path.join(tmp, "api.log"), "a") as f:
            f.write(json.dumps({"path": self.path, "auth": ok, "biz": biz}) + "\n")
        if not ok:
            return self.answer(401, {"error": "invalid bearer token: the signature does not verify: signed with another secret, or changed since"})
        if legacy:
            return self.legacy_refund(biz)
        if self.path != "/alipay/api/alipay.trade.refund":
            return self.answer(404, {"error": "no such API method"})
        if not isinstance(biz, dict) or not biz.get("out_request_no"):
            return self.answer(400, {"error": "alipay.trade.refund needs an out_request_no"})
        no = biz.get("out_trade_no", "")
        if listed("api502", no):
            return self.answer(502, {"error": "the gateway could not be reached"})
        if listed("api40004", no):
            return self.answer(200, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_HAS_CLOSE", "sub_msg": "交易已经关闭"})
        with lock:
            first = biz["out_request_no"] not in seen
            seen.add(biz["out_request_no"])
        self.answer(200, {"code": "10000", "msg": "Success", "out_trade_no": no, "fund_change": "Y" if first else "N",
                          "refund_fee": biz.get("refund_amount")})
    def legacy_refund(self, biz):
        if self.path != "/alipay/api/refund_fastpay_by_platform_nopwd":
            return self.answer(404, {"error": "no such API method"})
        batch = biz.get("batch_no") if isinstance(biz, dict) else None
        today = datetime.datetime.now(CHINA).strftime("%Y%m%d")
        if not (isinstance(batch, str) and re.fullmatch(r"[0-9]{8}[A-Za-z0-9]{3,24}", batch)
                and batch[:8] == today and batch[8:] != "000"):
            return self.answer(400, {"error": f"batch_no: today's date {today} and 3 to 24 letters or digits"})
        refunds = biz.get("refunds")
        if not (isinstance(refunds, list) and refunds and all(
                isinstance(r, dict) and r.get("trade_no") and re.fullmatch(r"[0-9]+\.[0-9]{2}", str(r.get("amount")))
                and not set("^$|#") & set(str(r.get("reason", ""))) for r in refunds)):
            return self.answer(400, {"error": "refunds: a list of trade_no, amount and reason"})
        trade = refunds[0]["trade_no"]
        if listed("api502", trade):
            return self.answer(502, {"error": "the gateway could not be reached"})
        if listed("apiF", trade):
            return self.answer(200, {"is_success": "F", "error": "TRADE_NOT_EXIST"})
        with lock:
            first = batch not in seen
            seen.add(batch)
        self.answer(200, {"is_success": "T"} if first else {"is_success": "F", "error": "DUPLICATE_BATCH_NO"})

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
open(os.path.join(tmp, "api.port.tmp"), "w").write(str(srv.server_address[1]))
os.rename(os.path.join(tmp, "api.port.tmp"), os.path.join(tmp, "api.port"))
srv.serve_forever()
PY
python3 "$tmp/fake_api.py" "$tmp" 2>"$tmp/api.err" &
apipid=$!
for _ in $(seq 100); do [ -s "$tmp/api.port" ] && break; sleep 0.1; done
export SHOP_SIDECAR_URL=http://127.0.0.1:$(cat "$tmp/api.port")/

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

tries=100
if [ "$lang" = python ]; then
  SHOP_PORT=$port python3 "$here/python-shop/shop.py" >"$tmp/shop.log" 2>&1 &
elif [ "$lang" = django ]; then
  SHOP_PORT=$port "$django_python" "$here/django-shop/serve.py" >"$tmp/shop.log" 2>&1 &
  tries=300 # it applies its migrations first
else
  php -S "127.0.0.1:$port" "$here/php-shop/index.php" >"$tmp/shop.log" 2>&1 &
fi
pid=$!
for _ in $(seq "$tries"); do
  curl -fs -o /dev/null "$base/" && break
  sleep 0.1
done

# The Django shop checks a CSRF token on its own forms' POSTs (/orders and
# the refund button), as a browser sends it: the csrftoken cookie that its
# pages set, and the token (here in the X-CSRFToken header). Caddy's
# /alipay/notify needs none. The other shops have no CSRF check.
csrf=()
if [ "$lang" = django ]; then
  curl -s -o /dev/null -c "$tmp/jar" "$base/"
  ctok=$(awk '$6 == "csrftoken" { print $7 }' "$tmp/jar")
  csrf=(-b "csrftoken=$ctok" -H "X-CSRFToken: $ctok")
fi

# tok.py makes X-Alipay-Token headers (good and bad) and checks pay tokens.
cat >"$tmp/tok.py" <<'PY'
import argparse, hashlib, hmac, json, os, sys, time
sys.path.insert(0, os.path.join(sys.argv.pop(1), "..", "docs", "snippets"))
from pay_token import _b64  # the snippet's base64url

ap = argparse.ArgumentParser()
ap.add_argument("op", choices=["make", "check-pay"])
ap.add_argument("--secret", default=os.environ["SHOP_SECRET"])
ap.add_argument("--aud", default=os.environ["ALIPAY_APP_ID"])
ap.add_argument("--iss", default="caddy-alipay")
ap.add_argument("--event", default="notify")
ap.add_argument("--jti", default="")
ap.add_argument("--exp-in", type=int, default=300)  # seconds from now
ap.add_argument("--alg", default="HS256")           # what the header says
ap.add_argument("--mac", default="sha256", choices=["sha256", "sha512", "none"])
ap.add_argument("--token", default="")
ap.add_argument("--protocol", default=os.environ.get("SMOKE_PROTOCOL_CLAIM", ""))  # legacy: a "protocol" claim
ap.add_argument("params", nargs="*")                # k=v
a = ap.parse_intermixed_args()

if a.op == "make":
    now = int(time.time())
    claims = {"iss": a.iss, "aud": a.aud, "iat": now, "exp": now + a.exp_in,
              "jti": a.jti or os.urandom(8).hex(), "event": a.event,
              "params": dict(p.split("=", 1) for p in a.params)}
    if a.protocol:
        claims["protocol"] = a.protocol
    signing_input = _b64(json.dumps({"alg": a.alg, "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    mac = "" if a.mac == "none" else _b64(hmac.new(a.secret.encode(), signing_input.encode(), getattr(hashlib, a.mac)).digest())
    print(signing_input + "." + mac)
else:  # check-pay: print the claims of a pay token made with the secret
    head, body, sig = a.token.split(".")
    want = _b64(hmac.new(a.secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(want, sig):
        sys.exit("pay token: bad signature")
    print(json.dumps(json.loads(__import__("base64").urlsafe_b64decode(body + "=" * (-len(body) % 4))), ensure_ascii=False))
PY
tok() { # a failure to make a token fails the run (a refusal test would pass vacuously)
  python3 "$tmp/tok.py" "$here" "$@" || echo "tok $*" >>"$tmp/tokfail"
}

# jcheck FILE k=JSON...: the JSON document in FILE has these fields.
cat >"$tmp/jcheck.py" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
bad = []
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    if v == "<set>":
        if not doc.get(k):
            bad.append(f"{k}={json.dumps(doc.get(k))}, want set")
    elif doc.get(k, "<missing>") != json.loads(v):
        bad.append(f"{k}={json.dumps(doc.get(k, '<missing>'), ensure_ascii=False)}, want {v}")
if bad:
    sys.exit("; ".join(bad))
PY

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
check() { # check NAME COMMAND...: passes if the command succeeds
  local name=$1; shift
  if "$@"; then ok "$name"; else ko "$name"; fi
}

# req METHOD PATH [curl args...]: sets $code, body in $tmp/body, headers in $tmp/head.
# A POST to the shop's own forms carries the CSRF token (Django only).
req() {
  local method=$1 path=$2; shift 2
  local extra=()
  if [ "$method" = POST ] && [[ $path != /alipay/* ]]; then extra=(${csrf[@]+"${csrf[@]}"}); fi
  code=$(curl -s -X "$method" -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' ${extra[@]+"${extra[@]}"} "$@" "$base$path")
}
location() { tr -d '\r' <"$tmp/head" | sed -n 's/^[Ll]ocation: //p'; }
has() { grep -qF -- "$1" "$tmp/body"; }
status_is() { # status_is NAME WANT
  if [ "$code" = "$2" ]; then ok "$1 ($code)"; else ko "$1" "HTTP $code, want $2"; fi
}
acked() { # acked NAME: the shop answered 200 with the body success, its acknowledgement (Caddy then answers Alipay success)
  if [ "$code" = 200 ] && cmp -s "$tmp/body" <(printf success); then
    ok "$1 (200 success)"
  else
    ko "$1" "HTTP $code, body $(head -c 80 "$tmp/body" | tr '\n' ' '), want 200 and the body success"
  fi
}
json_is() { # json_is NAME ORDER k=JSON...
  local name=$1 no=$2; shift 2
  curl -s -o "$tmp/json" "$base/orders/$no.json"
  local out
  if out=$(python3 "$tmp/jcheck.py" "$tmp/json" "$@" 2>&1); then ok "$name"; else ko "$name" "$out"; fi
}
notify() { # notify TOKEN [curl args...]: POST /alipay/notify with a raw form that the shop must ignore
  local t=$1; shift
  req POST /alipay/notify ${t:+-H "X-Alipay-Token: $t"} "$@"
}
new_order() { # new_order PRODUCT: prints the out_trade_no
  req POST /orders -d "product=$1"
  location | sed -n 's#^/orders/##p'
}

label="$lang shop"
if [ "$protocol" = legacy ]; then label="$lang shop (legacy protocol, partner $ALIPAY_APP_ID)"; fi
echo "== $label on $base"

# --- products -----------------------------------------------------------------
req GET /
status_is "GET / answers" 200
check "product page has buy-sticker, buy-mug, buy-tea" bash -c "grep -q 'id=\"buy-sticker\"' '$tmp/body' && grep -q 'id=\"buy-mug\"' '$tmp/body' && grep -q 'id=\"buy-tea\"' '$tmp/body'"
check "product page is UTF-8 with the Chinese name and prices" bash -c "grep -q '<meta charset=\"utf-8\">' '$tmp/body' && grep -q '西湖龙井' '$tmp/body' && grep -q '0.01' '$tmp/body' && grep -q '9.90' '$tmp/body' && grep -q '88.80' '$tmp/body'"
check "each buy button posts to /orders" bash -c "[ \$(grep -c 'method=\"post\" action=\"/orders\"' '$tmp/body') = 3 ]"
if [ "$lang" = django ]; then
  check "django: each form carries a CSRF token, and the page sets the cookie" bash -c \
    "[ \$(grep -o 'name=\"csrfmiddlewaretoken\"' '$tmp/body' | wc -l) = 3 ] && [ -n '$ctok' ]"
  code=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST -d product=mug "$base/orders")
  status_is "django: POST /orders without the CSRF token refused" 403
  code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Host: shop.example.net' "$base/")
  status_is "django: a Host outside ALLOWED_HOSTS refused" 400
  req GET /no/such/page
  status_is "django: unknown path" 404
  check "django: DEBUG is off (no debug page)" bash -c "! grep -qi -e 'URLconf' -e 'DEBUG = True' -e 'Traceback' '$tmp/body'"
fi

# --- orders -------------------------------------------------------------------
req POST /orders -d product=nope
status_is "unknown product refused" 400

req POST /orders -d 'product=mug&total_amount=0.01'
status_is "POST /orders redirects" 303
A=$(location | sed -n 's#^/orders/##p')
check "out_trade_no is 1 to 64 letters or digits ($A)" bash -c "[[ '$A' =~ ^[A-Za-z0-9]{1,64}$ ]]"
json_is "new order: unpaid, amount from the server" "$A" out_trade_no="\"$A\"" total_amount='"9.90"' status='"unpaid"' notifications=0 notify_calls=0 paid_at=null refund_fee=null

req GET "/orders/$A"
status_is "order page answers" 200
check "order page: status unpaid, no refund button" bash -c "grep -q '<strong id=\"status\">unpaid</strong>' '$tmp/body' && ! grep -q 'id=\"refund\"' '$tmp/body'"
check "order page: no refresh before a return" bash -c "! grep -q 'http-equiv=\"refresh\"' '$tmp/body'"
paytok=$(sed -n 's#.*id="pay" href="/alipay/pay?token=\([^"]*\)".*#\1#p' "$tmp/body")
if claims=$(tok check-pay --token "$paytok" 2>&1); then
  echo "$claims" >"$tmp/pay.json"
  exp_lo=$(($(date +%s) + 595)); exp_hi=$(($(date +%s) + 605))
  check "pay link: token signed with the secret, claims from the order" \
    python3 "$tmp/jcheck.py" "$tmp/pay.json" out_trade_no="\"$A\"" total_amount='"9.90"' subject='"Coffee mug"' product='"page"'
  check "pay token: exp = now + SHOP_PAY_TTL" python3 -c "import json,sys; e=json.load(open('$tmp/pay.json'))['exp']; sys.exit(not $exp_lo <= e <= $exp_hi)"
else
  ko "pay link with a valid pay token" "$claims"
fi
req GET /orders/NOSUCHORDER.json
status_is "unknown order JSON" 404

# --- notify: refused tokens -----------------------------------------------------
form="out_trade_no=$A&$AMT=9.90&trade_status=TRADE_SUCCESS&notify_id=forged"
P=(out_trade_no="$A" "$AMT=9.90" trade_status=TRADE_SUCCESS trade_no=2024052022001400000001)
notify "" -d "$form"; status_is "notify without a token (raw form only)" 403
notify "garbage" -d "$form"; status_is "notify with a garbage token" 403
notify "$(tok make --secret "wrong-secret-wrong-secret-wrong-secret" "${P[@]}")" -d "$form"; status_is "notify with a wrong secret" 403
notify "$(tok make --alg none --mac none "${P[@]}")" -d "$form"; status_is "notify with alg none, no MAC" 403
notify "$(tok make --alg none "${P[@]}")" -d "$form"; status_is "notify with alg none, HS256 MAC" 403
notify "$(tok make --alg HS512 --mac sha512 "${P[@]}")" -d "$form"; status_is "notify with alg HS512" 403
notify "$(tok make --aud "$other_aud" "${P[@]}")" -d "$form"; status_is "notify for another app (aud)" 403
notify "$(tok make --iss someone-else "${P[@]}")" -d "$form"; status_is "notify from another issuer" 403
notify "$(tok make --exp-in -120 "${P[@]}")" -d "$form"; status_is "notify expired beyond the 60 s leeway" 403
notify "$(tok make --event return "${P[@]}")" -d "$form"; status_is "notify with a return token" 403
notify "" -H "X-Alipay-Token: $(tok make "${P[@]}")x" -d "$form"; status_is "notify with a tampered MAC" 403
if [ "$lang" = django ]; then
  notify "$(tok make --protocol v9 "${P[@]}")" -d "$form"; status_is "django: notify of an unknown protocol" 403
fi
json_is "refused notifications change nothing and are not counted" "$A" status='"unpaid"' notifications=0 notify_calls=0 paid_at=null

# --- notify: accepted -----------------------------------------------------------
notify "$(tok make --jti N1 "${P[@]}")"
acked "good notify"
json_is "order paid once" "$A" status='"paid"' notifications=1 notify_calls=1 paid_at='<set>' trade_no='"2024052022001400000001"'
notify "$(tok make --jti N1 "${P[@]}")"
acked "repeat of the same notify (same jti)"
json_is "repeat: notifications 1, notify_calls 2" "$A" status='"paid"' notifications=1 notify_calls=2
notify "$(tok make --jti N2 out_trade_no="$A" "$AMT=9.90" trade_status=TRADE_FINISHED)"
acked "TRADE_FINISHED after TRADE_SUCCESS"
json_is "TRADE_FINISHED: still paid once" "$A" status='"paid"' notifications=1 notify_calls=3
req GET "/orders/$A"
check "order page: status paid, no pay link" bash -c "grep -q '<strong id=\"status\">paid</strong>' '$tmp/body' && ! grep -q 'id=\"pay\"' '$tmp/body'"
check "order page: a refund button posting to /orders/<no>/refund" bash -c "grep -q 'action=\"/orders/$A/refund\"' '$tmp/body' && grep -q 'id=\"refund\"' '$tmp/body'"

# --- notify: amounts, statuses, unknown orders ----------------------------------
B=$(new_order tea)
notify "$(tok make --jti N3 out_trade_no="$B" "$AMT=0.01" trade_status=TRADE_SUCCESS)" \
  -d "out_trade_no=$B&$AMT=88.80&trade_status=TRADE_SUCCESS"
acked "wrong amount: answered success (no retries)"
json_is "wrong amount: not paid, counted" "$B" status='"unpaid"' notifications=0 notify_calls=1
check "wrong amount: logged" grep -q amount_mismatch "$tmp/shop.log"
notify "$(tok make --jti N4 out_trade_no="$B" "$AMT=88.80" trade_status=WAIT_BUYER_PAY)"
acked "WAIT_BUYER_PAY notify"
json_is "WAIT_BUYER_PAY: not paid" "$B" status='"unpaid"' notifications=0 notify_calls=2
notify "$(tok make --jti N5 --exp-in -30 out_trade_no="$B" "$AMT=88.8" trade_status=TRADE_SUCCESS)"
acked "notify expired 30 s ago (within leeway), amount 88.8"
json_is "88.8 equals 88.80: paid" "$B" status='"paid"' notifications=1 notify_calls=3
notify "$(tok make --jti N6 out_trade_no=NOSUCHORDER "$AMT=1.00" trade_status=TRADE_SUCCESS)"
acked "unknown order: answered success"
check "unknown order: logged" grep -q unknown_order "$tmp/shop.log"

if [ "$protocol" = legacy ]; then
  # A plain 即时到账 partner gets TRADE_FINISHED only; the protocol claim, not
  # the field names, says where the amount is; a retry may carry a new notify_id.
  F=$(new_order mug)
  notify "$(tok make --jti L1 out_trade_no="$F" total_amount=9.90 trade_status=TRADE_FINISHED)"
  acked "legacy: a token with total_amount, no total_fee: answered success"
  json_is "legacy: total_amount is not the legacy amount: not paid" "$F" status='"unpaid"' notifications=0 notify_calls=1
  notify "$(tok make --jti L2 --protocol '' out_trade_no="$F" total_fee=9.90 trade_status=TRADE_FINISHED)"
  acked "legacy: a token without the protocol claim (read as OpenAPI): answered success"
  json_is "legacy: without the protocol claim total_fee is not read: not paid" "$F" status='"unpaid"' notifications=0 notify_calls=2
  notify "$(tok make --jti L3 out_trade_no="$F" total_fee=9.9 trade_status=TRADE_FINISHED trade_no=2024052022001400000077)"
  acked "legacy: TRADE_FINISHED alone (plain 即时到账)"
  json_is "legacy: TRADE_FINISHED alone pays, total_fee 9.9 equals 9.90" "$F" status='"paid"' notifications=1 notify_calls=3 paid_at='<set>' trade_no='"2024052022001400000077"'
  notify "$(tok make --jti L4 out_trade_no="$F" total_fee=9.90 trade_status=TRADE_FINISHED trade_no=2024052022001400000078)"
  acked "legacy: the same payment again with a new notify_id"
  json_is "legacy: a new notify_id for a paid order changes nothing" "$F" status='"paid"' notifications=1 notify_calls=4 trade_no='"2024052022001400000077"'
  notify "$(tok make --jti L5 out_trade_no="$F" total_fee=9.90 trade_status=TRADE_CLOSED)"
  acked "legacy: a late TRADE_CLOSED"
  json_is "legacy: a late TRADE_CLOSED does not unpay" "$F" status='"paid"' notifications=1 notify_calls=5
fi

D=$(new_order mug)
curls=()
for i in 1 2 3 4 5 6; do
  curl -s -o "$tmp/concurrent$i" -w '%{http_code}' -X POST -H "X-Alipay-Token: $(tok make --jti N7 out_trade_no="$D" "$AMT=9.90" trade_status=TRADE_SUCCESS)" "$base/alipay/notify" >"$tmp/concurrent$i.code" &
  curls+=($!)
done
wait "${curls[@]}"
json_is "6 concurrent deliveries of one notification: paid once, 6 calls" "$D" status='"paid"' notifications=1 notify_calls=6
check "6 concurrent deliveries: each answered 200 success" bash -c \
  'for i in 1 2 3 4 5 6; do [ "$(cat "$1/concurrent$i.code")" = 200 ] && cmp -s "$1/concurrent$i" <(printf success) || exit 1; done' _ "$tmp"

# --- return ---------------------------------------------------------------------
C=$(new_order sticker)
req GET "/alipay/return?out_trade_no=$A&total_amount=0.01" -H "X-Alipay-Token: $(tok make --event return out_trade_no="$C" "$AMT=0.01" trade_no=2024052022001400000009)"
status_is "return redirects" 303
check "return goes to the token's order, not the query's" bash -c "[ '$(location)' = '/orders/$C' ]"
req GET "/orders/$C"
check "after the return: still unpaid, confirming, refreshes every 2 s, pay link" bash -c \
  "grep -q '<strong id=\"status\">unpaid</strong>' '$tmp/body' && grep -q 'id=\"confirming\"' '$tmp/body' && grep -q '<meta http-equiv=\"refresh\" content=\"2\">' '$tmp/body' && grep -q 'id=\"pay\"' '$tmp/body'"
json_is "the return does not pay" "$C" status='"unpaid"' notifications=0 notify_calls=0
req GET "/alipay/return?out_trade_no=$C"
status_is "return without a token" 403
req GET "/alipay/return?out_trade_no=$C" -H "X-Alipay-Token: $(tok make --secret wrong-secret-wrong-secret-wrong-secret --event return out_trade_no="$C")"
status_is "return with a wrong secret" 403
req GET "/alipay/return?out_trade_no=$C" -H "X-Alipay-Token: $(tok make out_trade_no="$C")"
status_is "return with a notify token" 403
notify "$(tok make --jti N8 out_trade_no="$C" "$AMT=0.01" trade_status=TRADE_SUCCESS)"
acked "notify after the return"
req GET "/orders/$C"
check "paid after the notify: no refresh" bash -c "grep -q '<strong id=\"status\">paid</strong>' '$tmp/body' && ! grep -q 'http-equiv' '$tmp/body'"

# --- refunds through the (fake) sidecar API ------------------------------------
# calls NO: the out_request_no of each API call for order NO, one a line
calls() { python3 -c 'import json, sys
for l in open(sys.argv[1]):
    c = json.loads(l)
    if (c["biz"] or {}).get("out_trade_no") == sys.argv[2]: print(c["biz"].get("out_request_no"))' "$tmp/api.log" "$1" 2>/dev/null; }
touch "$tmp/api.log"

if [ "$lang" = django ]; then
  code=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST "$base/orders/$A/refund")
  status_is "django: refund without the CSRF token refused" 403
  json_is "django: no CSRF token: still paid" "$A" status='"paid"' refund_fee=null
fi
U=$(new_order mug)
req POST "/orders/$U/refund"
status_is "refund of an unpaid order refused by the shop" 409
check "unpaid: the page says why" has 'id="refund-error"'
check "unpaid: no API call" test ! -s "$tmp/api.log"
json_is "unpaid: still unpaid" "$U" status='"unpaid"' refund_fee=null
req POST /orders/NOSUCHORDER/refund
status_is "refund of an unknown order" 404

# The notification that follows a refund never pays: an unpaid order stays
# unpaid (OpenAPI: refund_fee, out_biz_no and gmt_refund; the legacy trade
# notification: refund_status and gmt_refund), and an unknown one is logged.
gmt_refund="$(date '+%Y-%m-%d %H:%M:%S')"
if [ "$protocol" = legacy ]; then
  RU=(total_fee=9.90 refund_status=REFUND_SUCCESS)
else
  RU=(total_amount=9.90 refund_fee=9.90 out_biz_no="$U-R1")
fi
notify "$(tok make --jti R0 out_trade_no="$U" "${RU[@]}" trade_status=TRADE_SUCCESS "gmt_refund=$gmt_refund" trade_no=2024052022001400000099)"
acked "a refund notification for an unpaid order: answered success"
json_is "a refund notification (TRADE_SUCCESS, the right amount) does not pay an unpaid order" "$U" \
  status='"unpaid"' notifications=0 paid_at=null refund_fee=null refund_notifications=1
check "a refund notification for an unpaid order: logged" grep -q refund_unpaid "$tmp/shop.log"
notify "$(tok make --jti R00 out_trade_no=NOSUCHORDER "${RU[@]}" trade_status=TRADE_CLOSED "gmt_refund=$gmt_refund")"
acked "a refund notification for an unknown order: answered success"
check "a refund notification for an unknown order: logged" grep -q refund_unknown_order "$tmp/shop.log"

if [ "$protocol" = legacy ]; then
  # Refunds through the legacy API: refund_fastpay_by_platform_nopwd, a batch
  # of one (Alipay's trade_no), whose batch_no is today's date in China and
  # the order's 24 hex digits; is_success T says only that the batch was
  # accepted, and the batch_refund_notify brings the result.
  cst_today() { python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y%m%d"))'; }
  batches() { # batches TRADE_NO: the batch_no of each API call that refunds Alipay's trade TRADE_NO, one a line
    python3 -c 'import json, sys
for l in open(sys.argv[1]):
    b = json.loads(l)["biz"] or {}
    if ((b.get("refunds") or [{}])[0] or {}).get("trade_no") == sys.argv[2]: print(b.get("batch_no"))' "$tmp/api.log" "$1" 2>/dev/null; }
  batch_notify() { # batch_notify JTI BATCH_NO RESULT_DETAILS: a batch_refund_notify token
    tok make --jti "$1" notify_type=batch_refund_notify notify_id="$1" "notify_time=$(date '+%Y-%m-%d %H:%M:%S')" \
      batch_no="$2" success_num=1 result_details="$3"
  }
  paid_order() { # paid_order JTI TRADE_NO: a new mug order, paid by a legacy notification; prints its out_trade_no
    local no
    no=$(new_order mug)
    notify "$(tok make --jti "$1" out_trade_no="$no" total_fee=9.90 trade_status=TRADE_FINISHED trade_no="$2")"
    echo "$no"
  }
  TA=2024052022001400000001 # A's trade_no
  batchA="$(cst_today)${A:1}"
  req POST "/orders/$A/refund"
  status_is "legacy: refund of a paid order: batch requested" 303
  check "legacy: refund redirects to the order" test "$(location)" = "/orders/$A"
  check "legacy: one call of refund_fastpay_by_platform_nopwd: batch_no of today (China) and the order, trade_no, full amount, reason, good bearer" python3 -c "import json, sys
c = [json.loads(l) for l in open('$tmp/api.log')]
sys.exit(not (len(c) == 1 and c[0]['path'] == '/alipay/api/refund_fastpay_by_platform_nopwd' and c[0]['auth']
  and c[0]['biz'] == {'batch_no': '$batchA', 'refunds': [{'trade_no': '$TA', 'amount': '9.90', 'reason': '退货'}]}))"
  json_is "legacy: accepted is not refunded: still paid, the batch recorded" "$A" status='"paid"' refund_fee=null \
    refund_batch_no="\"$batchA\"" refund_requested_at='<set>' refund_notifications=0 refund_error=null
  req GET "/orders/$A"
  check "legacy: the page says refund requested and refreshes, with no refund button" bash -c \
    "grep -q '<strong id=\"status\">paid</strong>' '$tmp/body' && grep -q 'id=\"refund-requested\"' '$tmp/body' && grep -q '$batchA' '$tmp/body' && grep -q '<meta http-equiv=\"refresh\" content=\"2\">' '$tmp/body' && ! grep -q 'id=\"refund\"' '$tmp/body'"
  req POST "/orders/$A/refund"
  status_is "legacy: a second refund POST while the batch is pending refused" 409
  check "legacy: ... with no second call" test "$(batches "$TA")" = "$batchA"
  notify "$(batch_notify B1 "$batchA" "$TA^9.90^SUCCESS")"
  acked "legacy: batch_refund_notify with SUCCESS"
  json_is "legacy: SUCCESS for its trade_no: refunded, refund_fee, a refund notification, not a payment" "$A" \
    status='"refunded"' refund_fee='"9.90"' refund_notifications=1 refund_notified_at='<set>' notifications=1 notify_calls=4
  notify "$(batch_notify B1 "$batchA" "$TA^9.90^SUCCESS")"
  acked "legacy: the same batch_refund_notify again (same notify_id)"
  json_is "legacy: its repeat changes nothing" "$A" status='"refunded"' refund_notifications=1 notify_calls=5
  notify "$(batch_notify B2 "$batchA" "$TA^9.90^SUCCESS")"
  acked "legacy: the same batch_refund_notify with a new notify_id"
  json_is "legacy: a new notify_id is recorded, still refunded once" "$A" status='"refunded"' refund_fee='"9.90"' refund_notifications=2 notifications=1
  req GET "/orders/$A"
  check "legacy: refunded page: refund fee shown, no refund button, no refresh" bash -c \
    "grep -q '<strong id=\"status\">refunded</strong>' '$tmp/body' && grep -q 'id=\"refund-fee\">¥9.90<' '$tmp/body' && ! grep -q 'id=\"refund\"' '$tmp/body' && ! grep -q 'http-equiv' '$tmp/body'"
  req POST "/orders/$A/refund"
  status_is "legacy: refund POST after the refund refused" 409
  check "legacy: ... with no call" test "$(batches "$TA")" = "$batchA"
  notify "$(tok make --jti L10 out_trade_no="$A" total_fee=9.90 trade_status=TRADE_FINISHED trade_no="$TA")"
  acked "legacy: a late paying notification after the refund"
  json_is "legacy: a late paying notification does not undo the refund" "$A" status='"refunded"' notifications=1

  # A batch item that Alipay did not refund: the button comes back; the same
  # day's retry sends the same batch_no, which Alipay takes only once.
  TF=2024052022001400000077 # F's trade_no
  batchF="$(cst_today)${F:1}"
  req POST "/orders/$F/refund"
  status_is "legacy: refund of F requested" 303
  notify "$(batch_notify B3 "$batchF" "$TF^9.90^REFUND_AMOUNT_NOT_VALID")"
  acked "legacy: batch_refund_notify with a failed item"
  json_is "legacy: a failed item: still paid, its code kept" "$F" status='"paid"' refund_fee=null \
    refund_error='"REFUND_AMOUNT_NOT_VALID"' refund_notifications=1 notifications=1
  req GET "/orders/$F"
  check "legacy: a failed batch: the page shows its code and the refund button again" bash -c \
    "grep -q 'id=\"refund-failed\"' '$tmp/body' && grep -q 'REFUND_AMOUNT_NOT_VALID' '$tmp/body' && grep -q 'id=\"refund\"' '$tmp/body' && ! grep -q 'http-equiv' '$tmp/body'"
  req POST "/orders/$F/refund"
  status_is "legacy: the same day's retry: refused by Alipay (the same batch_no)" 502
  check "legacy: ... the page shows why, still paid" bash -c \
    "grep -q 'id=\"refund-error\"' '$tmp/body' && grep -q DUPLICATE_BATCH_NO '$tmp/body' && grep -q '<strong id=\"status\">paid</strong>' '$tmp/body'"
  check "legacy: the retry sent the same batch_no" test "$(batches "$TF" | tr '\n' ' ')" = "$batchF $batchF "
  json_is "legacy: after the refused retry: paid, nothing pending" "$F" status='"paid"' refund_requested_at=null refund_fee=null

  # A double click: one batch.
  TG=2024052022001400000079
  G=$(paid_order L11 "$TG")
  json_is "legacy: G paid" "$G" status='"paid"' trade_no="\"$TG\""
  curls=()
  for _ in 1 2; do curl -s -o /dev/null -X POST ${csrf[@]+"${csrf[@]}"} "$base/orders/$G/refund" & curls+=($!); done
  wait "${curls[@]}"
  json_is "legacy: double click: the batch requested" "$G" status='"paid"' refund_requested_at='<set>'
  check "legacy: double click: every call with the same batch_no" test "$(batches "$TG" | sort -u)" = "$(cst_today)${G:1}"

  # The sidecar fails, then a retry; Alipay refuses the batch.
  TH=2024052022001400000080
  H=$(paid_order L12 "$TH")
  echo "$TH" >"$tmp/api502"
  req POST "/orders/$H/refund"
  status_is "legacy: sidecar error: refund failed" 502
  check "legacy: sidecar error: the page shows it" bash -c "grep -q 'id=\"refund-error\"' '$tmp/body' && grep -q 'the gateway could not be reached' '$tmp/body' && grep -q '<strong id=\"status\">paid</strong>' '$tmp/body'"
  json_is "legacy: sidecar error: still paid, nothing pending" "$H" status='"paid"' refund_requested_at=null
  : >"$tmp/api502"
  req POST "/orders/$H/refund"
  status_is "legacy: retry after the error" 303
  json_is "legacy: retry: requested" "$H" status='"paid"' refund_requested_at='<set>'
  check "legacy: retry: the same batch_no" test "$(batches "$TH" | tr '\n' ' ')" = "$(cst_today)${H:1} $(cst_today)${H:1} "
  TI=2024052022001400000081
  I=$(paid_order L13 "$TI")
  echo "$TI" >"$tmp/apiF"
  req POST "/orders/$I/refund"
  status_is "legacy: is_success F: refund failed" 502
  check "legacy: is_success F: the page shows Alipay's error" bash -c "grep -q 'id=\"refund-error\"' '$tmp/body' && grep -q TRADE_NOT_EXIST '$tmp/body'"
  json_is "legacy: is_success F: still paid, nothing pending" "$I" status='"paid"' refund_requested_at=null refund_fee=null
  # A result counts only for a batch this shop sent, and only for its trade
  # (a partner signing with RSA shares Alipay's key with every other one).
  notify "$(batch_notify B4 "$(cst_today)NOTOURS1" "$TI^9.90^SUCCESS")"
  acked "legacy: batch_refund_notify of a batch the shop never sent: answered success"
  json_is "legacy: ... refunds nothing" "$I" status='"paid"' refund_fee=null refund_notifications=0
  check "legacy: ... logged" grep -q refund_not_ours "$tmp/shop.log"
  notify "$(batch_notify B5 "$(cst_today)${I:1}" "$TA^9.90^SUCCESS#$TI^9.90^SUCCESS")"
  acked "legacy: the shop's batch, with an item for another trade too"
  json_is "legacy: only the batch's own trade is refunded" "$I" status='"refunded"' refund_fee='"9.90"' refund_notifications=1
  json_is "legacy: ... and the other trade's order is untouched" "$A" refund_notifications=2
  check "every API call had a good bearer token" python3 -c "import json, sys; sys.exit(not all(json.loads(l)['auth'] for l in open('$tmp/api.log')))"
else # OpenAPI: refunds through the sidecar's API (the block is left unindented, as it was)
req POST "/orders/$A/refund"
status_is "refund of a paid order" 303
check "refund redirects to the order" bash -c "[ '$(location)' = '/orders/$A' ]"
json_is "refunded: status refunded, refund_fee" "$A" status='"refunded"' refund_fee='"9.90"' notifications=1
check "refund: one call, out_request_no <no>-R1, full amount, good bearer token" python3 -c "import json, sys
c = [json.loads(l) for l in open('$tmp/api.log')]
sys.exit(not (len(c) == 1 and c[0]['path'] == '/alipay/api/alipay.trade.refund' and c[0]['auth']
  and c[0]['biz'] == {'out_trade_no': '$A', 'refund_amount': '9.90', 'out_request_no': '$A-R1'}))"
req GET "/orders/$A"
check "refunded page: status refunded, refund fee shown, no refund button or pay link" bash -c \
  "grep -q '<strong id=\"status\">refunded</strong>' '$tmp/body' && grep -q 'id=\"refund-fee\">¥9.90<' '$tmp/body' && ! grep -q 'id=\"refund\"' '$tmp/body' && ! grep -q 'id=\"pay\"' '$tmp/body'"
req POST "/orders/$A/refund"
status_is "second refund POST refused: already refunded" 409
check "second POST: no call with another out_request_no" test "$(calls "$A" | sort -u)" = "$A-R1"
json_is "second POST: still refunded" "$A" status='"refunded"' refund_fee='"9.90"'
notify "$(tok make --jti N9 out_trade_no="$A" "$AMT=9.90" trade_status=TRADE_SUCCESS)"
acked "a late TRADE_SUCCESS after the refund"
json_is "a late TRADE_SUCCESS does not undo the refund" "$A" status='"refunded"' notifications=1 notify_calls=4
# The notification Alipay sends after the refund: trade_status_sync again, with
# refund_fee (the total refunded so far), gmt_refund and out_biz_no.
RA=(out_trade_no="$A" total_amount=9.90 trade_no=2024052022001400000001 "gmt_refund=$gmt_refund" out_biz_no="$A-R1")
notify "$(tok make --jti R1 "${RA[@]}" trade_status=TRADE_CLOSED refund_fee=9.90)"
acked "the refund's notification (TRADE_CLOSED, refund_fee)"
json_is "the refund's notification: recorded, still refunded, not a payment" "$A" status='"refunded"' refund_fee='"9.90"' \
  notifications=1 refund_notifications=1 refund_notified_at='<set>' notify_calls=5
notify "$(tok make --jti R1 "${RA[@]}" trade_status=TRADE_CLOSED refund_fee=9.90)"
acked "its repeat (same notify_id)"
json_is "its repeat changes nothing" "$A" status='"refunded"' refund_notifications=1 notify_calls=6
notify "$(tok make --jti R2 "${RA[@]}" trade_status=TRADE_SUCCESS refund_fee=1.00)"
acked "a late notification of a smaller refund (TRADE_SUCCESS)"
json_is "a late TRADE_SUCCESS with refund_fee: still refunded, refund_fee kept" "$A" status='"refunded"' refund_fee='"9.90"' \
  notifications=1 refund_notifications=2
check "refund notifications call nothing" test "$(calls "$A" | sort -u)" = "$A-R1"
# Refunds made elsewhere (the merchant portal, the sandbox's trade page): the
# notification alone moves a paid order to refunded; a partial one is recorded.
E=$(new_order mug)
notify "$(tok make --jti N10 out_trade_no="$E" "$AMT=9.90" trade_status=TRADE_SUCCESS trade_no=2024052022001400000010)"
json_is "E paid" "$E" status='"paid"' notifications=1
notify "$(tok make --jti R3 out_trade_no="$E" total_amount=9.90 "gmt_refund=$gmt_refund" out_biz_no=portal-1 trade_status=TRADE_CLOSED refund_fee=9.90)"
acked "a full refund's notification for a paid order"
json_is "a full refund made elsewhere: refunded by its notification" "$E" status='"refunded"' refund_fee='"9.90"' \
  notifications=1 refund_notifications=1 refund_notified_at='<set>'
check "... with no API call" test -z "$(calls "$E")"
E2=$(new_order mug)
notify "$(tok make --jti N11 out_trade_no="$E2" "$AMT=9.90" trade_status=TRADE_SUCCESS trade_no=2024052022001400000011)"
notify "$(tok make --jti R4 out_trade_no="$E2" total_amount=9.90 "gmt_refund=$gmt_refund" out_biz_no=portal-2 trade_status=TRADE_SUCCESS refund_fee=1.00)"
acked "a partial refund's notification"
json_is "a partial refund: recorded, the order stays paid" "$E2" status='"paid"' refund_fee='"1.00"' notifications=1 refund_notifications=1

curls=()
for _ in 1 2; do curl -s -o /dev/null -X POST ${csrf[@]+"${csrf[@]}"} "$base/orders/$D/refund" & curls+=($!); done
wait "${curls[@]}"
json_is "double click: refunded once" "$D" status='"refunded"' refund_fee='"9.90"'
check "double click: every call with out_request_no <no>-R1" test "$(calls "$D" | sort -u)" = "$D-R1"

echo "$B" >"$tmp/api502"
req POST "/orders/$B/refund"
status_is "sidecar error: refund failed" 502
check "sidecar error: the page shows it" bash -c "grep -q 'id=\"refund-error\"' '$tmp/body' && grep -q 'the gateway could not be reached' '$tmp/body' && grep -q '<strong id=\"status\">paid</strong>' '$tmp/body'"
json_is "sidecar error: still paid, no refund_fee" "$B" status='"paid"' refund_fee=null
: >"$tmp/api502"
req POST "/orders/$B/refund"
status_is "retry after the error" 303
json_is "retry: refunded" "$B" status='"refunded"' refund_fee='"88.80"'
check "retry: the same out_request_no" test "$(calls "$B" | tr '\n' ' ')" = "$B-R1 $B-R1 "

echo "$C" >"$tmp/api40004"
req POST "/orders/$C/refund"
status_is "business failure (40004): refund failed" 502
check "business failure: the page shows sub_msg and sub_code" bash -c "grep -q 'id=\"refund-error\"' '$tmp/body' && grep -q '交易已经关闭' '$tmp/body' && grep -q 'ACQ.TRADE_HAS_CLOSE' '$tmp/body'"
json_is "business failure: still paid" "$C" status='"paid"' refund_fee=null
check "every API call had a good bearer token" python3 -c "import json, sys; sys.exit(not all(json.loads(l)['auth'] for l in open('$tmp/api.log')))"
fi # OpenAPI refunds

if [ -s "$tmp/tokfail" ]; then ko "the token maker failed" "$(cat "$tmp/tokfail")"; fi
echo "== $label: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
  echo "--- shop log" >&2
  cat "$tmp/shop.log" >&2
  echo "--- fake sidecar API" >&2
  cat "$tmp/api.err" "$tmp/api.log" >&2 2>/dev/null
  exit 1
fi
