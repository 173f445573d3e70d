"""The README's token code (docs/snippets), copied in verbatim: a test keeps it so.

make_pay_token signs the shop's pay tokens (and the bearer token of the
sidecar's API); verify_alipay_token checks the X-Alipay-Token that Caddy
adds to a verified callback. pay_url is left out: the shop sets the ttl.
"""
import base64
import hashlib
import hmac
import json
import time


# --- from docs/snippets/pay_token.py, verbatim (pay_url left out: the shop sets the ttl) ---

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_pay_token(order: dict, secret: str, ttl: int = 300) -> str:
    """An HS256 JWT of the order, signed with the secret shared with Caddy.

    order: out_trade_no, total_amount as a string ("88.80"), subject,
    optional product ("page", "wap", "app" or "qr").
    """
    head = _b64(b'{"alg":"HS256","typ":"JWT"}')
    body = _b64(json.dumps({**order, "exp": int(time.time()) + ttl}).encode())
    sig = _b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


# --- docs/snippets/verify_token.py, verbatim ---------------------------------

def _json_b64(segment: str):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def verify_alipay_token(token: str, secret: str, app_id: str) -> dict:
    """Checks an X-Alipay-Token and returns its claims; raises ValueError if it is not good."""
    head, body, sig = token.split(".")  # ValueError unless three parts
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.urlsafe_b64encode(mac).rstrip(b"="), sig.encode()):
        raise ValueError("bad signature")
    if _json_b64(head).get("alg") != "HS256":
        raise ValueError("alg is not HS256")
    claims = _json_b64(body)
    if claims.get("iss") != "caddy-alipay" or claims.get("aud") != app_id:
        raise ValueError("not for this app")
    if time.time() >= claims.get("exp", 0) + 60:  # 60 s of leeway for clock skew
        raise ValueError("expired")
    return claims
