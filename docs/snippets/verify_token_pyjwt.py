import jwt  # pip install PyJWT


def verify_alipay_token(token: str, secret: str, app_id: str) -> dict:
    """Checks an X-Alipay-Token and returns its claims; raises jwt.InvalidTokenError if it is not good."""
    return jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience=app_id,
        issuer="caddy-alipay",
        leeway=60,  # seconds of clock skew
        options={"require": ["exp", "iss", "aud"]},
    )
