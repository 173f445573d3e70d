"""Test driver for api_call.py: one JSON command {method, biz, secret, base} on stdin, the answer on stdout.

The snippet's error (RuntimeError) exits 3; any other exception is a crash.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from api_call import alipay_api  # noqa: E402

cmd = json.load(sys.stdin)
try:
    out = alipay_api(cmd["method"], cmd["biz"], cmd["secret"], cmd["base"])
except RuntimeError as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)
print(json.dumps(out), end="")
