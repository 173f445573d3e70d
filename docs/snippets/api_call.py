import json
import urllib.error
import urllib.request

from pay_token import make_pay_token  # the pay-token snippet above, as pay_token.py


def alipay_api(method: str, biz: dict, secret: str, base: str) -> dict:
    """Calls Alipay's OpenAPI through the sidecar at base ("https://shop.example.com").

    biz is the method's biz_content; the answer is the method's response (read its
    "code": "10000" is success). A refund, which a retry with the same out_request_no
    cannot repeat: alipay_api("alipay.trade.refund", {"out_trade_no": "T20240520001",
    "refund_amount": "10.00", "out_request_no": "R1"}, secret, "https://shop.example.com")
    """
    req = urllib.request.Request(f"{base}/alipay/api/{method}", data=json.dumps(biz).encode(), headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + make_pay_token({"scope": "api"}, secret, 300)})
    try:
        # 90 s: a barcode payment lasts up to barcode_wait (60 s) and its cancels.
        with urllib.request.urlopen(req, timeout=90) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        out = json.loads(e.read() or "{}")
        code = f" ({out['code']} {out.get('msg')})" if "code" in out else ""
        raise RuntimeError(f"alipay api {e.code}: {out.get('error')}{code}") from None
