#!/usr/bin/env bash
# Walks a purchase through the running demo (bash demo/run.sh) with curl,
# as a browser would: order, pay link, sidecar, sandbox cashier, Pay,
# return; then waits for the shop to record the notification. Then it
# presses the order page's Refund button (alipay.trade.refund, or the
# legacy refund_fastpay_by_platform_nopwd, through the sidecar's API) and
# waits for the order to be refunded and the refund's notification (OpenAPI's
# refund_fee, the legacy batch_refund_notify) to reach the shop.
set -euo pipefail
shop=${SHOP_URL:-http://127.0.0.1:8080}
sandbox=${SANDBOX_URL:-http://127.0.0.1:8081}
fail() { echo "demo check: $*" >&2; exit 1; }
location() { curl -s -o /dev/null -w '%{redirect_url}' "$@"; }
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT

# As a browser: keep the shop's cookies, and send back the CSRF token that
# the Django shop's forms carry (the other shops set none).
curl -fs -c "$jar" "$shop/" | grep -q 'id="buy-mug"' || fail "no product list at $shop/"
csrf=$(awk '$6 == "csrftoken" { print $7 }' "$jar")
order=$(location -b "$jar" ${csrf:+-H "X-CSRFToken: $csrf"} -X POST -d product=mug "$shop/orders")
[[ "$order" == "$shop/orders/"* ]] || fail "ordering answered $order"
pay=$(curl -fs "$order" | grep -o 'href="/alipay/pay?token=[^"]*"' | sed 's/^href="//;s/"$//')
[ -n "$pay" ] || fail "no pay link on $order"
gateway=$(location "$shop$pay")
[[ "$gateway" == "$sandbox/gateway.do?"*"sign="* ]] || fail "the sidecar redirected to $gateway"
cashier=$(location "$gateway")
[[ "$cashier" == "$sandbox/sandbox/cashier/"* ]] || fail "the sandbox refused the request: $cashier"
curl -fs "$cashier" | grep -q '<span id="amount">9.90</span>' || fail "the cashier does not show the amount"
back=$(location -X POST "$cashier/pay")
[[ "$back" == "$shop/alipay/return?"* ]] || fail "Pay answered $back"
curl -fs -o /dev/null "$back" || fail "the return was refused"
for _ in $(seq 50); do
  if curl -fs "$order.json" | grep -q '"status": *"paid"'; then
    curl -fs "$order.json" | grep -q '"notifications": *1' || fail "paid, but not by one notification"
    # The sandbox's trade page has it delivered, with nothing left to send
    # (it records the attempt once it has read the sidecar's success).
    for _ in $(seq 50); do
      trade=$(curl -fs -H 'Accept: application/json' "$sandbox/sandbox/trades/${order##*/}") \
        || fail "the sandbox has no trade page for ${order##*/}"
      if grep -q '"delivered": true' <<<"$trade" && grep -q '"next_attempt": null' <<<"$trade"; then
        echo "demo check: order ${order##*/} paid through the sandbox, and delivered on its trade page"
        break 2
      fi
      sleep 0.2
    done
    fail "the sandbox's trade page does not have the notification delivered: $trade"
  fi
  sleep 0.2
done
curl -fs "$order.json" | grep -q '"status": *"paid"' || fail "the order did not become paid: $(curl -s "$order.json")"

refund=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" ${csrf:+-H "X-CSRFToken: $csrf"} -X POST "$order/refund")
[ "$refund" = 303 ] || fail "the refund button answered HTTP $refund: $(curl -s "$order.json")"
for _ in $(seq 50); do
  if curl -fs "$order.json" | grep -q '"status": *"refunded"' && ! curl -fs "$order.json" | grep -q '"refund_notifications": *0'; then
    echo "demo check: order ${order##*/} refunded, and the refund's notification is in"
    exit 0
  fi
  sleep 0.2
done
fail "the order was not refunded, or the refund's notification did not come: $(curl -s "$order.json")"
