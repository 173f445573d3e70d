import base64
import hashlib
import hmac
import json
import time


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
