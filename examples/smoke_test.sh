#!/usr/bin/env bash
# Smoke test of one demo shop on its own, without Caddy: it plays the
# sidecar's part by making X-Alipay-Token headers itself (HS256 with the
# shared secret, as the README's Python snippet signs).
#
#   bash examples/smoke_test.sh python
#   bash examples/smoke_test.sh php
#
# Starts the shop on a free loopback port with a temporary database, runs
# the checks, stops the shop. Exits non-zero if any check fails.
# Needs bash, curl, python3 (and php with pdo_sqlite for the PHP shop).
set -uo pipefail

lang=${1:-}
here=$(cd "$(dirname "$0")" && pwd)
case $lang in
  python | php) ;;
  *) echo "usage: bash examples/smoke_test.sh python|php" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
pid=
cleanup() {
  local status=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

export SHOP_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
export ALIPAY_APP_ID=2021000000000001
export SHOP_DB=$tmp/shop.db
export SHOP_PAY_TTL=600
export PYTHONDONTWRITEBYTECODE=1
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

if [ "$lang" = python ]; then
  SHOP_PORT=$port python3 "$here/python-shop/shop.py" >"$tmp/shop.log" 2>&1 &
else
  php -S "127.0.0.1:$port" "$here/php-shop/index.php" >"$tmp/shop.log" 2>&1 &
fi
pid=$!
for _ in $(seq 100); do
  curl -fs -o /dev/null "$base/" && break
  sleep 0.1
done

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
ap.add_argument("params", nargs="*")                # k=v
a = ap.parse_intermixed_args()

if a.op == "make":
    now = int(time.time())
    claims = {"iss": a.iss, "aud": a.aud, "iat": now, "exp": now + a.exp_in,
              "jti": a.jti or os.urandom(8).hex(), "event": a.event,
              "params": dict(p.split("=", 1) for p in a.params)}
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
req() {
  local method=$1 path=$2; shift 2
  code=$(curl -s -X "$method" -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' "$@" "$base$path")
}
location() { tr -d '\r' <"$tmp/head" | sed -n 's/^[Ll]ocation: //p'; }
has() { grep -qF -- "$1" "$tmp/body"; }
status_is() { # status_is NAME WANT
  if [ "$code" = "$2" ]; then ok "$1 ($code)"; else ko "$1" "HTTP $code, want $2"; fi
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

echo "== $lang shop on $base"

# --- products -----------------------------------------------------------------
req GET /
status_is "GET / answers" 200
check "product page has buy-sticker, buy-mug, buy-tea" bash -c "grep -q 'id=\"buy-sticker\"' '$tmp/body' && grep -q 'id=\"buy-mug\"' '$tmp/body' && grep -q 'id=\"buy-tea\"' '$tmp/body'"
check "product page is UTF-8 with the Chinese name and prices" bash -c "grep -q '<meta charset=\"utf-8\">' '$tmp/body' && grep -q '西湖龙井' '$tmp/body' && grep -q '0.01' '$tmp/body' && grep -q '9.90' '$tmp/body' && grep -q '88.80' '$tmp/body'"
check "each buy button posts to /orders" bash -c "[ \$(grep -c 'method=\"post\" action=\"/orders\"' '$tmp/body') = 3 ]"

# --- orders -------------------------------------------------------------------
req POST /orders -d product=nope
status_is "unknown product refused" 400

req POST /orders -d 'product=mug&total_amount=0.01'
status_is "POST /orders redirects" 303
A=$(location | sed -n 's#^/orders/##p')
check "out_trade_no is 1 to 64 letters or digits ($A)" bash -c "[[ '$A' =~ ^[A-Za-z0-9]{1,64}$ ]]"
json_is "new order: unpaid, amount from the server" "$A" out_trade_no="\"$A\"" total_amount='"9.90"' status='"unpaid"' notifications=0 notify_calls=0 paid_at=null

req GET "/orders/$A"
status_is "order page answers" 200
check "order page: status unpaid" has '<strong id="status">unpaid</strong>'
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
form="out_trade_no=$A&total_amount=9.90&trade_status=TRADE_SUCCESS&notify_id=forged"
P=(out_trade_no="$A" total_amount=9.90 trade_status=TRADE_SUCCESS trade_no=2024052022001400000001)
notify "" -d "$form"; status_is "notify without a token (raw form only)" 403
notify "garbage" -d "$form"; status_is "notify with a garbage token" 403
notify "$(tok make --secret "wrong-secret-wrong-secret-wrong-secret" "${P[@]}")" -d "$form"; status_is "notify with a wrong secret" 403
notify "$(tok make --alg none --mac none "${P[@]}")" -d "$form"; status_is "notify with alg none, no MAC" 403
notify "$(tok make --alg none "${P[@]}")" -d "$form"; status_is "notify with alg none, HS256 MAC" 403
notify "$(tok make --alg HS512 --mac sha512 "${P[@]}")" -d "$form"; status_is "notify with alg HS512" 403
notify "$(tok make --aud 2021000000000002 "${P[@]}")" -d "$form"; status_is "notify for another app (aud)" 403
notify "$(tok make --iss someone-else "${P[@]}")" -d "$form"; status_is "notify from another issuer" 403
notify "$(tok make --exp-in -120 "${P[@]}")" -d "$form"; status_is "notify expired beyond the 60 s leeway" 403
notify "$(tok make --event return "${P[@]}")" -d "$form"; status_is "notify with a return token" 403
notify "" -H "X-Alipay-Token: $(tok make "${P[@]}")x" -d "$form"; status_is "notify with a tampered MAC" 403
json_is "refused notifications change nothing and are not counted" "$A" status='"unpaid"' notifications=0 notify_calls=0 paid_at=null

# --- notify: accepted -----------------------------------------------------------
notify "$(tok make --jti N1 "${P[@]}")"
status_is "good notify" 200
check "notify answers ok" has ok
json_is "order paid once" "$A" status='"paid"' notifications=1 notify_calls=1 paid_at='<set>' trade_no='"2024052022001400000001"'
notify "$(tok make --jti N1 "${P[@]}")"
status_is "repeat of the same notify (same jti)" 200
json_is "repeat: notifications 1, notify_calls 2" "$A" status='"paid"' notifications=1 notify_calls=2
notify "$(tok make --jti N2 out_trade_no="$A" total_amount=9.90 trade_status=TRADE_FINISHED)"
status_is "TRADE_FINISHED after TRADE_SUCCESS" 200
json_is "TRADE_FINISHED: still paid once" "$A" status='"paid"' notifications=1 notify_calls=3
req GET "/orders/$A"
check "order page: status paid, no pay link" bash -c "grep -q '<strong id=\"status\">paid</strong>' '$tmp/body' && ! grep -q 'id=\"pay\"' '$tmp/body'"

# --- notify: amounts, statuses, unknown orders ----------------------------------
B=$(new_order tea)
notify "$(tok make --jti N3 out_trade_no="$B" total_amount=0.01 trade_status=TRADE_SUCCESS)" \
  -d "out_trade_no=$B&total_amount=88.80&trade_status=TRADE_SUCCESS"
status_is "wrong amount: answered 200 (no retries)" 200
json_is "wrong amount: not paid, counted" "$B" status='"unpaid"' notifications=0 notify_calls=1
check "wrong amount: logged" grep -q amount_mismatch "$tmp/shop.log"
notify "$(tok make --jti N4 out_trade_no="$B" total_amount=88.80 trade_status=WAIT_BUYER_PAY)"
status_is "WAIT_BUYER_PAY notify" 200
json_is "WAIT_BUYER_PAY: not paid" "$B" status='"unpaid"' notifications=0 notify_calls=2
notify "$(tok make --jti N5 --exp-in -30 out_trade_no="$B" total_amount=88.8 trade_status=TRADE_SUCCESS)"
status_is "notify expired 30 s ago (within leeway), amount 88.8" 200
json_is "88.8 equals 88.80: paid" "$B" status='"paid"' notifications=1 notify_calls=3
notify "$(tok make --jti N6 out_trade_no=NOSUCHORDER total_amount=1.00 trade_status=TRADE_SUCCESS)"
status_is "unknown order: answered 200" 200
check "unknown order: logged" grep -q unknown_order "$tmp/shop.log"

D=$(new_order mug)
curls=()
for _ in 1 2 3 4 5 6; do
  curl -s -o /dev/null -X POST -H "X-Alipay-Token: $(tok make --jti N7 out_trade_no="$D" total_amount=9.90 trade_status=TRADE_SUCCESS)" "$base/alipay/notify" &
  curls+=($!)
done
wait "${curls[@]}"
json_is "6 concurrent deliveries of one notification: paid once, 6 calls" "$D" status='"paid"' notifications=1 notify_calls=6

# --- return ---------------------------------------------------------------------
C=$(new_order sticker)
req GET "/alipay/return?out_trade_no=$A&total_amount=0.01" -H "X-Alipay-Token: $(tok make --event return out_trade_no="$C" total_amount=0.01 trade_no=2024052022001400000009)"
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
notify "$(tok make --jti N8 out_trade_no="$C" total_amount=0.01 trade_status=TRADE_SUCCESS)"
req GET "/orders/$C"
check "paid after the notify: no refresh" bash -c "grep -q '<strong id=\"status\">paid</strong>' '$tmp/body' && ! grep -q 'http-equiv' '$tmp/body'"

if [ -s "$tmp/tokfail" ]; then ko "the token maker failed" "$(cat "$tmp/tokfail")"; fi
echo "== $lang shop: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
  echo "--- shop log" >&2
  cat "$tmp/shop.log" >&2
  exit 1
fi
