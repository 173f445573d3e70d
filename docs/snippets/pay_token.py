import base64
import hashlib
import hmac
import json
import time


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


def pay_url(order: dict, secret: str) -> str:
    """The link that starts the payment: send the buyer's browser there."""
    return "/alipay/pay?token=" + make_pay_token(order, secret)
