#!/usr/bin/env bash
# The quick-start demo: one Caddy with the alipay sidecar in front of the
# Python demo shop on http://127.0.0.1:8080, and the local Alipay
# (alipay_sandbox) on http://127.0.0.1:8081. Keys and the shared secret
# are made on first run under .demo/ (never committed). Ctrl-C stops all.
#
# DEMO_PROTOCOL=legacy runs the legacy 即时到账 protocol instead (an MD5,
# GBK partner) in front of the Django shop.
set -euo pipefail
cd "$(dirname "$0")/.."
demo="$(pwd)/.demo"
mkdir -p "$demo"

echo "building Caddy with the alipay module..." >&2
go build -o "$demo/caddy" ./cmd/caddy

if [ ! -f "$demo/secret" ] || [ ! -f "$demo/md5_key" ]; then
  # The app's key pair (the sidecar signs with it, the sandbox checks), the
  # sandbox's "Alipay" key pair (the sandbox signs, the sidecar checks),
  # the shared secret and the legacy partner's MD5 key. --force: a .demo/
  # of an older demo has some of them.
  "$demo/caddy" alipay-sandbox-keys --force "$demo" >/dev/null
fi

export DEMO_DIR="$demo"
SHOP_SECRET=$(cat "$demo/secret")
export SHOP_SECRET SHOP_PORT=8000

case ${DEMO_PROTOCOL:-openapi} in
  openapi)
    # The Python shop (standard library only), an OpenAPI (RSA2) app.
    export ALIPAY_APP_ID=2021000000000001 SHOP_DB="$demo/shop.db"
    config=demo/Caddyfile
    python3 examples/python-shop/shop.py &
    ;;
  legacy)
    # The Django shop (Debian's python3-django), a legacy 即时到账 partner
    # with a GBK charset: the same shop code would run in front of either.
    if ! /usr/bin/python3 -c 'import django' 2>/dev/null; then
      echo "the legacy demo runs the Django shop: apt-get install python3-django" >&2
      exit 1
    fi
    export ALIPAY_PARTNER=2088000000000001 SHOP_DB="$demo/django-shop.db"
    export ALIPAY_APP_ID=$ALIPAY_PARTNER # the shop's name for the token's aud
    config=demo/Caddyfile.legacy
    /usr/bin/python3 examples/django-shop/serve.py &
    ;;
  *)
    echo "DEMO_PROTOCOL is openapi (the default) or legacy" >&2
    exit 2
    ;;
esac
shop=$!
trap 'kill $shop 2>/dev/null || true' EXIT INT TERM

echo "open http://127.0.0.1:8080/ (the shop; Alipay is the sandbox on :8081, its trades and notifications on http://127.0.0.1:8081/sandbox/trades; the shop itself is on 127.0.0.1:8000 and Caddy's admin API on 127.0.0.1:2019, all on loopback only; Ctrl-C stops)"
"$demo/caddy" run --config "$config" --adapter caddyfile
