#!/usr/bin/env bash
# The quick-start demo: one Caddy with the alipay sidecar in front of the
# Python demo shop on http://127.0.0.1:8080, and the local Alipay
# (alipay_sandbox) on http://127.0.0.1:8081. Keys and the shared secret
# are made on first run under .demo/ (never committed). Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
demo="$(pwd)/.demo"
mkdir -p "$demo"

echo "building Caddy with the alipay module..." >&2
go build -o "$demo/caddy" ./cmd/caddy

if [ ! -f "$demo/secret" ]; then
  # The app's key pair (the sidecar signs with it, the sandbox checks) and
  # the sandbox's "Alipay" key pair (the sandbox signs, the sidecar checks).
  for who in app alipay; do
    openssl genrsa -out "$demo/${who}_private_key.pem" 2048 2>/dev/null
    openssl rsa -in "$demo/${who}_private_key.pem" -pubout -out "$demo/${who}_public_key.pem" 2>/dev/null
  done
  head -c 48 /dev/urandom | base64 | tr -d '\n' > "$demo/secret"
  chmod 600 "$demo"/*.pem "$demo/secret"
fi

export DEMO_DIR="$demo"
SHOP_SECRET=$(cat "$demo/secret")
export SHOP_SECRET ALIPAY_APP_ID=2021000000000001 SHOP_PORT=8000 SHOP_DB="$demo/shop.db"

python3 examples/python-shop/shop.py &
shop=$!
trap 'kill $shop 2>/dev/null || true' EXIT INT TERM

echo "open http://127.0.0.1:8080/ (the shop; Alipay is the sandbox on :8081; Ctrl-C stops)"
"$demo/caddy" run --config demo/Caddyfile --adapter caddyfile
