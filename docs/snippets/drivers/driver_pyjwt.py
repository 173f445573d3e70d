"""Test driver for verify_token_pyjwt.py: one JSON verify command on stdin, the claims on stdout.

A refusal (jwt.InvalidTokenError) exits 3; any other exception is a crash.
"""
import json
import os
import sys

import jwt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from verify_token_pyjwt import verify_alipay_token  # noqa: E402

cmd = json.load(sys.stdin)
if cmd["op"] != "verify":
    sys.exit("unknown op")
try:
    claims = verify_alipay_token(cmd["token"], cmd["secret"], cmd["app_id"])
except jwt.InvalidTokenError as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)
print(json.dumps(claims), end="")
