"""Test driver: one JSON command on stdin, the result on stdout.

A refusal (ValueError) exits 3; any other exception is a crash.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pay_token import make_pay_token, pay_url  # noqa: E402
from verify_token import verify_alipay_token  # noqa: E402

cmd = json.load(sys.stdin)
if cmd["op"] == "make":
    print(make_pay_token(cmd["order"], cmd["secret"], cmd["ttl"]), end="")
elif cmd["op"] == "url":
    print(pay_url(cmd["order"], cmd["secret"]), end="")
elif cmd["op"] == "verify":
    try:
        claims = verify_alipay_token(cmd["token"], cmd["secret"], cmd["app_id"])
    except ValueError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3)
    print(json.dumps(claims), end="")
else:
    sys.exit("unknown op")
