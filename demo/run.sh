#!/usr/bin/env bash
# The quick-start demo: Caddy with caddy-alipay on http://127.0.0.1:8080,
# in front of a one-page "shop". Keys and the shared secret are made on
# first run under .demo/ (never committed).
#
# Until the local Alipay sandbox exists (issue 3), the pay link goes to
# Alipay's own sandbox gateway, which will not know the demo app: the
# point here is the signed redirect that Caddy makes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo="$root/.demo"
mkdir -p "$demo"

echo "building Caddy with the alipay module..." >&2
go build -o "$demo/caddy" ./cmd/caddy

if [ ! -f "$demo/app_private_key.pem" ]; then
  openssl genrsa -out "$demo/app_private_key.pem" 2048 2>/dev/null
  openssl genrsa -out "$demo/alipay_private_key.pem" 2048 2>/dev/null
  openssl rsa -in "$demo/alipay_private_key.pem" -pubout -out "$demo/alipay_public_key.pem" 2>/dev/null
  head -c 48 /dev/urandom | base64 | tr -d '\n' > "$demo/secret"
  chmod 600 "$demo"/*.pem "$demo/secret"
fi

export DEMO_DIR="$demo"
DEMO_SECRET=$(cat "$demo/secret")
export DEMO_SECRET
# The shop's side: sign the order with the shared secret (docs/snippets/pay_token.py).
DEMO_PAY_URL=$(python3 - "$DEMO_SECRET" <<'PY'
import sys
sys.path.insert(0, "docs/snippets")
from pay_token import make_pay_token
order = {"out_trade_no": "DEMO0001", "total_amount": "0.01", "subject": "caddy-alipay demo"}
print("/alipay/pay?token=" + make_pay_token(order, sys.argv[1], ttl=24 * 3600))
PY
)
export DEMO_PAY_URL

echo "open http://127.0.0.1:8080/ (Ctrl-C stops)"
exec "$demo/caddy" run --config demo/Caddyfile --adapter caddyfile
