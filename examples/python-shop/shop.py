#!/usr/bin/env python3
"""A demo shop behind caddy-alipay: Python standard library only.

Caddy (with the alipay handler) sits in front of it and does all of Alipay's
cryptography. The shop signs its orders into pay tokens and checks the
X-Alipay-Token that Caddy adds to verified callbacks, with the README's
snippets (copied below). It listens on 127.0.0.1 only: it must be reachable
only through Caddy.

Environment:
  SHOP_SECRET    the secret shared with Caddy, at least 32 bytes (required)
  ALIPAY_APP_ID  the app's APPID at Alipay, the token's aud (required)
  SHOP_PORT      port on 127.0.0.1 (default 8000)
  SHOP_DB        sqlite file (default shop.db beside this file)
  SHOP_PAY_TTL   pay token lifetime in seconds (default 900)
  SHOP_SIDECAR_URL  where the shop reaches Caddy's API (default http://127.0.0.1:8080)

Besides the web page pay link, it takes face-to-face payments: a QR code
that the buyer scans (the sidecar's page of a pay token with product qr),
a counter page where staff scan the buyer's payment code (alipay.trade.pay
through the sidecar's API), and POST /app/orders, the backend of a mobile
app (the sidecar's signed order_string for Alipay's app SDK). Whatever the
way, an order turns paid only by the verified notification.
"""

import base64
import contextlib
import decimal
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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


# --- configuration ----------------------------------------------------------

def config() -> dict:
    secret = os.environ.get("SHOP_SECRET", "")
    app_id = os.environ.get("ALIPAY_APP_ID", "")
    if len(secret.encode()) < 32:
        sys.exit("shop: SHOP_SECRET must be set to the secret shared with Caddy, at least 32 bytes")
    if not app_id:
        sys.exit("shop: ALIPAY_APP_ID must be set to the app's APPID")
    return {
        "secret": secret,
        "app_id": app_id,
        "port": int(os.environ.get("SHOP_PORT", "8000")),
        "db": os.environ.get("SHOP_DB") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "shop.db"),
        "pay_ttl": int(os.environ.get("SHOP_PAY_TTL", "900")),
        "sidecar": (os.environ.get("SHOP_SIDECAR_URL") or "http://127.0.0.1:8080").rstrip("/"),
    }


CONF: dict = {}

# Prices are strings of yuan with 2 decimals; the buyer never sends one.
PRODUCTS = {
    "sticker": {"name": "Sticker", "amount": "0.01"},
    "mug": {"name": "Coffee mug", "amount": "9.90"},
    "tea": {"name": "西湖龙井 Longjing tea, 250 g", "amount": "88.80"},
}
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
# Alipay's notification after a refund is the trade's trade_status_sync again,
# with these fields: refund_fee (the total refunded so far), gmt_refund and
# out_biz_no (the refund's out_request_no). Its trade_status is TRADE_SUCCESS
# after a partial refund, TRADE_CLOSED after a full one: never a payment.
REFUND_FIELDS = ("refund_fee", "out_biz_no", "gmt_refund")
TRADE_NO_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
AMOUNT_RE = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,2}))?")
# A buyer's payment code, as the sidecar checks it: 16 to 24 digits starting 25 to 30.
AUTH_CODE_RE = re.compile(r"(?:2[5-9]|30)[0-9]{14,22}")
# Barcode pay answers once settled: up to the sidecar's barcode_wait (60 s by
# default) of polling, then up to three cancels 2 s apart, each call bounded.
BARCODE_TIMEOUT = 150

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  out_trade_no TEXT PRIMARY KEY,
  product      TEXT NOT NULL,
  subject      TEXT NOT NULL,
  total_amount TEXT NOT NULL,              -- "9.90"
  status       TEXT NOT NULL,              -- unpaid | paid | refunded
  created_at   TEXT NOT NULL,
  paid_at      TEXT,
  trade_no     TEXT,                       -- Alipay's, from the paying notification
  returned_at  TEXT,                       -- the buyer came back from Alipay
  notify_calls INTEGER NOT NULL DEFAULT 0, -- notify requests with a valid token
  refund_fee   TEXT,                       -- "9.90" once refunded (Alipay's refund_fee)
  refund_notified_at TEXT,                 -- the first refund notification
  barcode      TEXT                        -- the counter's barcode pay, JSON: {"result", "trade_no", "error"}
);
-- One row per notification (jti = notify_id), written in the transaction
-- that acts on it, so a repeat is recognised and a rolled-back one is not.
CREATE TABLE IF NOT EXISTS notifications (
  jti          TEXT PRIMARY KEY,
  out_trade_no TEXT NOT NULL,
  outcome      TEXT NOT NULL,  -- paid | already_paid | amount_mismatch | unknown_order | not_paid_status,
                               -- or a refund's: refunded | refund_recorded | refund_partial | refund_unpaid | refund_unknown_order
  trade_status TEXT NOT NULL,
  total_amount TEXT NOT NULL,
  received_at  TEXT NOT NULL,
  exp          INTEGER NOT NULL
);
"""


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def connect() -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit, BEGIN IMMEDIATE ... COMMIT.
    conn = sqlite3.connect(CONF["db"], isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


@contextlib.contextmanager
def db():
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


def init_db() -> None:
    with db() as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        columns = [r["name"] for r in conn.execute("PRAGMA table_info(orders)")]
        # A database from before refunds, or before face-to-face payments.
        for column in ("refund_fee", "refund_notified_at", "barcode"):
            if column not in columns:
                conn.execute(f"ALTER TABLE orders ADD COLUMN {column} TEXT")


def normalize_amount(s) -> str | None:
    """ "88.8" -> "88.80"; None unless a plain decimal of yuan with at most 2 decimals."""
    m = AMOUNT_RE.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    return f"{int(m.group(1))}.{(m.group(2) or '').ljust(2, '0')}"


def larger_amount(a, b):
    """The larger of two amounts (either may be None): Alipay's refund_fee only grows,
    so a late notification of an earlier refund never lowers the shop's record."""
    return max((x for x in (a, b) if x), key=decimal.Decimal, default=None)


def is_refund_notification(p: dict) -> bool:
    return any(k in p for k in REFUND_FIELDS)


def refund_outcome(o, p: dict) -> str:
    """What a refund notification means for the order o (None: unknown). It never pays:
    an unpaid order stays unpaid, a refunded one refunded."""
    if not o:
        return "refund_unknown_order"
    if o["status"] == "unpaid":
        return "refund_unpaid"  # a refund of a payment the shop never saw: someone must look
    full = (p.get("trade_status") == "TRADE_CLOSED"
            or normalize_amount(p.get("refund_fee")) == normalize_amount(o["total_amount"]))
    if not full:
        return "refund_partial"  # recorded; the order keeps its status
    return "refunded" if o["status"] == "paid" else "refund_recorded"  # refunded: the API's answer came first


def get_order(conn, no):
    return conn.execute("SELECT * FROM orders WHERE out_trade_no = ?", (no,)).fetchone()


def insert_order(pid: str) -> str:
    """A new unpaid order of the product; returns its out_trade_no."""
    product = PRODUCTS[pid]
    no = "T" + secrets.token_hex(12).upper()
    with db() as conn:
        conn.execute(
            "INSERT INTO orders (out_trade_no, product, subject, total_amount, status, created_at)"
            " VALUES (?, ?, ?, ?, 'unpaid', ?)",
            (no, pid, product["name"], product["amount"], now_iso()),
        )
    return no


def order_token(o, product: str) -> str:
    """A fresh pay token of the order o for the sidecar's product (page, qr, app);
    the amount and subject come from the database."""
    return make_pay_token({
        "out_trade_no": o["out_trade_no"], "total_amount": o["total_amount"],
        "subject": o["subject"], "product": product,
    }, CONF["secret"], CONF["pay_ttl"])


def barcode_of(o) -> dict | None:
    """The order's barcode pay record (the counter's), or None."""
    try:
        doc = json.loads(o["barcode"]) if o["barcode"] else None
    except ValueError:
        doc = None
    return doc if isinstance(doc, dict) else None


def paying_notifications(conn, no) -> int:
    return conn.execute(
        "SELECT COUNT(*) FROM notifications WHERE out_trade_no = ? AND outcome = 'paid'", (no,)
    ).fetchone()[0]


def refund_notifications(conn, no) -> int:
    return conn.execute(
        "SELECT COUNT(*) FROM notifications WHERE out_trade_no = ? AND outcome LIKE 'refund%'", (no,)
    ).fetchone()[0]


def log(msg: str) -> None:
    print(f"shop: {msg}", file=sys.stderr, flush=True)


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the sidecar is near: no proxy


def call_api(method: str, biz: dict, timeout: float = 20) -> dict:
    """POSTs biz_content to the sidecar's {prefix}/api/<method>; returns Alipay's verified answer.

    Raises RuntimeError with a message for the buyer when the call itself failed.
    """
    return sidecar_json(urllib.request.Request(
        f"{CONF['sidecar']}/alipay/api/{method}", data=json.dumps(biz).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Bearer " + make_pay_token({"scope": "api"}, CONF["secret"], 300)}), timeout)


def fetch_pay(token: str) -> dict:
    """The sidecar's JSON answer to a pay token ({prefix}/pay with Accept: application/json):
    {"order_string"} for product app. The sidecar names its own /alipay/notify, built from
    the Host it is asked on, as the notify_url: SHOP_SIDECAR_URL must be the shop's site.

    Raises RuntimeError as call_api does."""
    return sidecar_json(urllib.request.Request(
        f"{CONF['sidecar']}/alipay/pay?" + urllib.parse.urlencode({"token": token}),
        headers={"Accept": "application/json"}), 20)


def sidecar_json(req: urllib.request.Request, timeout: float) -> dict:
    """Sends a request to the sidecar and returns its answer, a JSON object."""
    try:
        with NO_PROXY.open(req, timeout=timeout) as res:
            body = res.read()
    except urllib.error.HTTPError as err:  # 4xx/5xx: {"error": ...}, maybe with Alipay's sub_msg
        try:
            doc = json.loads(err.read())
        except (OSError, ValueError):
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        msg = " ".join(str(doc[k]) for k in ("error", "sub_msg") if doc.get(k)) or err.reason
        raise RuntimeError(f"the payment service answered HTTP {err.code}: {msg}") from None
    except OSError as err:
        raise RuntimeError(f"the payment service could not be reached: {err}") from None
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise RuntimeError("the payment service's answer is not a JSON object")
    return doc


# --- HTML -------------------------------------------------------------------

def e(s) -> str:
    return html.escape(str(s), quote=True)


def page(title: str, body: str, refresh: bool = False) -> bytes:
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · demo shop</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5}}
li{{margin:.5em 0}} form{{display:inline}} .amount{{font-weight:bold}}</style>
</head><body>
<p><a href="/">Demo shop</a> (Python)</p>
{body}
</body></html>
""".encode()


# --- the shop ---------------------------------------------------------------

class Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-shop"
    timeout = 30

    def send(self, status: int, body: bytes, ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, doc: dict, headers=()):
        self.send(status, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(),
                  "application/json", headers)

    def redirect(self, location: str):
        self.send(303, b"", "text/plain", [("Location", location)])

    def error(self, status: int, msg: str):
        self.send(status, page(msg, f"<h1>{e(msg)}</h1>"))

    def read_body(self) -> bytes:
        # Always drained (the connection is kept alive), at most 64 KiB.
        n = int(self.headers.get("Content-Length") or 0)
        if n > 65536:
            raise ValueError("body too large")
        return self.rfile.read(n)

    def claims(self, event: str):
        """The verified X-Alipay-Token's claims, or None. Only these are trusted."""
        try:
            c = verify_alipay_token(self.headers.get("X-Alipay-Token", ""), CONF["secret"], CONF["app_id"])
            params = c.get("params")
            if (c.get("event") != event or not isinstance(c.get("jti"), str) or not c["jti"]
                    or not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values())):
                raise ValueError("not a " + event + " token")
            return c
        except Exception as err:  # noqa: BLE001 - any malformed token is refused alike
            log(f"{event}: refused X-Alipay-Token: {err}")
            return None

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            return self.products()
        if path == "/alipay/return":
            return self.alipay_return()
        if path == "/counter":
            return self.counter_page()
        m = re.fullmatch(r"/orders/([A-Za-z0-9_]{1,64})(\.json|/qr|/status)?", path)
        if m:
            if m.group(2) == "/qr":
                return self.pay_qr(m.group(1))
            if m.group(2) == "/status":
                return self.order_status(m.group(1))
            return self.order_json(m.group(1)) if m.group(2) else self.order_page(m.group(1))
        m = re.fullmatch(r"/counter/([A-Za-z0-9_]{1,64})", path)
        if m:
            return self.counter_result(m.group(1))
        self.error(404, "Not found")

    def do_POST(self):
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            return self.error(413, "Too large")
        path = urllib.parse.urlsplit(self.path).path
        if path == "/orders":
            return self.create_order(body)
        if path == "/alipay/notify":
            return self.notify()  # the raw form body is ignored: only the token counts
        if path == "/counter":
            return self.counter_charge(body)
        if path == "/app/orders":
            return self.app_order(body)
        m = re.fullmatch(r"/orders/([A-Za-z0-9_]{1,64})/refund", path)
        if m:
            return self.refund(m.group(1))
        self.error(404, "Not found")

    def products(self):
        items = "".join(
            f'<li>{e(p["name"])}: <span class="amount">¥{e(p["amount"])}</span> '
            f'<form method="post" action="/orders"><input type="hidden" name="product" value="{e(pid)}">'
            f'<button type="submit" id="buy-{e(pid)}">Buy</button></form></li>\n'
            for pid, p in PRODUCTS.items()
        )
        self.send(200, page("Products", f"<h1>Products</h1>\n<ul>\n{items}</ul>\n"
                                        '<p><a id="counter" href="/counter">Counter</a>: '
                                        "take a payment code in the shop (barcode pay)</p>"))

    def create_order(self, body: bytes):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        pid = (form.get("product") or [""])[0]
        if pid not in PRODUCTS:
            return self.error(400, "Unknown product")
        self.redirect(f"/orders/{insert_order(pid)}")

    def order_page(self, no: str, status: int = 200, refund_error: str | None = None):
        with db() as conn:
            o = get_order(conn, no)
        if not o:
            return self.error(404, "No such order")
        rows = (f'<p>Order <code id="order">{e(no)}</code></p>\n'
                f'<p>{e(o["subject"])}: <span class="amount" id="amount">¥{e(o["total_amount"])}</span></p>\n'
                f'<p>Status: <strong id="status">{e(o["status"])}</strong></p>\n')
        confirming = o["status"] == "unpaid" and o["returned_at"] is not None
        barcode = barcode_of(o)
        barcode_confirming = o["status"] == "unpaid" and barcode is not None and barcode.get("result") == "paid"
        if barcode:
            rows += f'<p>At the counter: <span id="counter-result">{e(barcode.get("result"))}</span></p>\n'
        if refund_error:
            rows += f'<p id="refund-error">The refund failed: {e(refund_error)}</p>\n'
        if o["status"] == "paid":
            rows += f'<p>Paid at {e(o["paid_at"])}. Thank you!</p>\n'
            rows += (f'<form method="post" action="/orders/{e(no)}/refund">'
                     f'<button type="submit" id="refund">Refund ¥{e(o["total_amount"])}</button></form>\n')
        elif o["status"] == "refunded":
            rows += f'<p>Refunded: <span class="amount" id="refund-fee">¥{e(o["refund_fee"])}</span></p>\n'
        else:
            if confirming:
                rows += ('<p id="confirming">You are back from Alipay: the payment is being confirmed. '
                         'This page refreshes itself.</p>\n')
            if barcode_confirming:
                rows += ('<p id="barcode-confirming">Paid at the counter: the payment is being confirmed. '
                         'This page refreshes itself.</p>\n')
            # A fresh pay token on each view; the amount comes from the database.
            token = order_token(o, "page")
            rows += (f'<p><a id="pay" href="{e("/alipay/pay?token=" + token)}">Pay with Alipay</a> '
                     f'or <a id="pay-qr" href="/orders/{e(no)}/qr">Pay by QR code</a></p>\n')
        self.send(status, page(f"Order {no}", f"<h1>Your order</h1>\n{rows}",
                               refresh=confirming or barcode_confirming))

    def pay_qr(self, no: str):
        """The QR code of an unpaid order, for the buyer to scan with the Alipay app: the
        sidecar's page of a qr pay token (Alipay's precreate), which draws the code, framed
        with the order's status. The status frame refreshes itself, not this page: a reload
        of the code's frame would ask Alipay for the code again. The notification pays the
        order, as any payment."""
        with db() as conn:
            o = get_order(conn, no)
        if not o:
            return self.error(404, "No such order")
        if o["status"] != "unpaid":
            return self.redirect(f"/orders/{no}")
        src = "/alipay/pay?" + urllib.parse.urlencode({"token": order_token(o, "qr")})
        self.send(200, page(f"Order {no}: QR code", f"""<h1>Pay by QR code</h1>
<p>{e(o["subject"])}: <span class="amount">¥{e(o["total_amount"])}</span>. Open the Alipay app and scan the code.</p>
<iframe id="qr-frame" title="The QR code" src="{e(src)}" style="width:100%;height:40em;border:0"></iframe>
<iframe id="status-frame" title="The order's status" src="/orders/{e(no)}/status" style="width:100%;height:4em;border:0"></iframe>
<p><a id="order-link" href="/orders/{e(no)}">Back to the order</a></p>"""))

    def order_status(self, no: str):
        """The status frame of the QR code's page: reloads itself every 2 s while the order
        is unpaid; once paid, a link to the order page (the whole window)."""
        with db() as conn:
            o = get_order(conn, no)
        if not o:
            return self.error(404, "No such order")
        st = o["status"]
        meta = '<meta http-equiv="refresh" content="2">' if st == "unpaid" else ""
        done = (f' <a id="done" href="/orders/{e(no)}">Paid: see your order</a>' if st != "unpaid" else
                " · waiting for your payment")
        self.send(200, f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}<base target="_top"><title>Status</title>
<style>body{{font-family:sans-serif;margin:0;line-height:1.5}}</style></head><body>
<p>Status: <strong id="status">{e(st)}</strong>{done}</p>
</body></html>
""".encode())

    def counter_page(self, status: int = 200, error: str | None = None):
        """The shop's counter: staff pick the product and scan the buyer's payment code
        (the barcode that the buyer's Alipay app shows). A real shop puts this behind
        its staff's login and a CSRF token; the demo has neither."""
        options = "".join(f'<option value="{e(pid)}">{e(p["name"])}: ¥{e(p["amount"])}</option>'
                          for pid, p in PRODUCTS.items())
        err = f'<p id="counter-error">{e(error)}</p>\n' if error else ""
        self.send(status, page("Counter", f"""<h1>Counter</h1>
{err}<form method="post" action="/counter">
<p><label>Product <select name="product" id="product">{options}</select></label></p>
<p><label>Buyer's payment code <input name="auth_code" id="auth-code" inputmode="numeric"
 autocomplete="off" pattern="[0-9]{{16,24}}" required></label></p>
<p><button type="submit" id="charge">Charge</button></p>
</form>"""))

    def counter_charge(self, body: bytes):
        """Charges the buyer's payment code for a new order of the product: the sidecar's
        alipay.trade.pay runs Alipay's whole flow (pay, query while the buyer confirms,
        cancel if that never comes) and answers once it is settled. The result is recorded
        and shown; the order turns paid only by the notification, as any order."""
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        pid = (form.get("product") or [""])[0]
        code = re.sub(r"\s", "", (form.get("auth_code") or [""])[0])
        if pid not in PRODUCTS:
            return self.counter_page(400, "Unknown product")
        if not AUTH_CODE_RE.fullmatch(code):
            return self.counter_page(400, "A payment code is 16 to 24 digits, starting 25 to 30")
        no = insert_order(pid)
        with db() as conn:
            o = get_order(conn, no)
        try:
            r = call_api("alipay.trade.pay", {
                "out_trade_no": no, "total_amount": o["total_amount"], "subject": o["subject"],
                "auth_code": code}, timeout=BARCODE_TIMEOUT)
            result = r.get("result")
            if result not in ("paid", "failed", "cancelled", "unknown"):
                raise RuntimeError(f"the payment service's answer has no result: {r.get('result')!r}")
            doc = {"result": result, "trade_no": r.get("trade_no") if isinstance(r.get("trade_no"), str) else None}
            if result == "unknown":
                log(f"counter {no}: barcode pay unknown: a person must settle trade {doc['trade_no']} at Alipay")
        except RuntimeError as err:
            # No answer is no result: the sidecar may still settle the trade, whose
            # notification would pay the order all the same.
            log(f"counter {no}: {err}")
            doc = {"result": "error", "trade_no": None, "error": str(err)}
        with db() as conn:
            conn.execute("UPDATE orders SET barcode = ? WHERE out_trade_no = ?", (json.dumps(doc), no))
        self.redirect(f"/counter/{no}")  # a reload shows the result, never charges again

    def counter_result(self, no: str):
        with db() as conn:
            o = get_order(conn, no)
        barcode = barcode_of(o) if o else None
        if not barcode:
            return self.error(404, "No such counter payment")
        result = barcode.get("result")
        says = {
            "paid": "Paid: hand over the goods.",
            "failed": "Not paid: the payment code was refused. Ask for another way to pay.",
            "cancelled": "Not paid in time: the payment was cancelled (and refunded if it went through).",
            "unknown": "Unknown: the payment could not be settled. Check the trade in Alipay's merchant portal.",
            "error": f"No answer from the payment service: {barcode.get('error')}",
        }.get(result, "")
        rows = (f'<p>Order <a id="order-link" href="/orders/{e(no)}">{e(no)}</a>: {e(o["subject"])}, '
                f'<span class="amount">¥{e(o["total_amount"])}</span></p>\n'
                f'<p>Result: <strong id="barcode-result">{e(result)}</strong></p>\n'
                f'<p>{e(says)}</p>\n')
        if barcode.get("trade_no"):
            rows += f'<p>Alipay trade <code id="barcode-trade-no">{e(barcode["trade_no"])}</code></p>\n'
        rows += '<p><a id="next" href="/counter">Next customer</a></p>\n'
        self.send(200 if result != "error" else 502, page(f"Counter {no}", f"<h1>Counter payment</h1>\n{rows}"))

    def app_order(self, body: bytes):
        """The backend of the shop's mobile app: {"product": "<id>"} makes an order and
        answers {"out_trade_no", "order_string"}, the signed string that the app hands to
        Alipay's app SDK, which the sidecar makes from an app pay token."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        pid = doc.get("product") if isinstance(doc, dict) else None
        if not isinstance(pid, str) or pid not in PRODUCTS:
            return self.send_json(400, {"error": "the body must be {\"product\": <a product id>}"})
        no = insert_order(pid)
        with db() as conn:
            o = get_order(conn, no)
        try:
            s = fetch_pay(order_token(o, "app")).get("order_string")
            if not isinstance(s, str) or not s:
                raise RuntimeError("the payment service's answer has no order_string")
        except RuntimeError as err:
            log(f"app order {no}: {err}")
            return self.send_json(502, {"error": str(err), "out_trade_no": no})
        self.send_json(201, {"out_trade_no": no, "order_string": s}, [("Location", f"/orders/{no}")])

    def order_json(self, no: str):
        with db() as conn:
            o = get_order(conn, no)
            if not o:
                return self.send(404, b'{"error":"not found"}', "application/json")
            doc = {
                "out_trade_no": o["out_trade_no"],
                "total_amount": o["total_amount"],
                "status": o["status"],
                "notifications": paying_notifications(conn, no),
                "notify_calls": o["notify_calls"],
                "paid_at": o["paid_at"],
                "trade_no": o["trade_no"],
                "refund_fee": o["refund_fee"],
                "refund_notifications": refund_notifications(conn, no),
                "refund_notified_at": o["refund_notified_at"],
                "barcode": barcode_of(o),
            }
        self.send(200, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(), "application/json")

    def notify(self):
        """The notification. Answers the body success only once the order is saved
        (or the notification is a repeat of one already done): Caddy then answers
        Alipay success. Any other answer makes Caddy answer fail (a 2xx without
        success too), and Alipay sends the notification again.

        A refund's notification (refund_fee, out_biz_no) is recorded, never taken
        for a payment, whatever its trade_status says."""
        c = self.claims("notify")
        if c is None:
            return self.send(403, b"forbidden\n", "text/plain")
        p = c["params"]
        no = p.get("out_trade_no", "")
        status = p.get("trade_status", "")
        amount = p.get("total_amount", "")
        conn = connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer: the check and the update are atomic
            o = get_order(conn, no)
            if o:
                conn.execute("UPDATE orders SET notify_calls = notify_calls + 1 WHERE out_trade_no = ?", (no,))
            if conn.execute("SELECT 1 FROM notifications WHERE jti = ?", (c["jti"],)).fetchone():
                conn.execute("COMMIT")
                return self.send(200, b"success", "text/plain")  # a repeat: already done
            if is_refund_notification(p):
                # After a refund (the shop's, or one made elsewhere): record it, never pay.
                outcome = refund_outcome(o, p)
                if o and outcome != "refund_unpaid":
                    conn.execute(
                        "UPDATE orders SET refund_fee = ?, refund_notified_at = COALESCE(refund_notified_at, ?)"
                        " WHERE out_trade_no = ?",
                        (larger_amount(o["refund_fee"], normalize_amount(p.get("refund_fee"))), now_iso(), no),
                    )
                if outcome == "refunded":  # refunded in full, but not through this shop's button (or before its answer)
                    conn.execute("UPDATE orders SET status = 'refunded' WHERE out_trade_no = ? AND status = 'paid'", (no,))
            elif not o:
                outcome = "unknown_order"
            elif normalize_amount(amount) != normalize_amount(o["total_amount"]):
                outcome = "amount_mismatch"
            elif status not in PAID_STATUSES:
                outcome = "not_paid_status"
            elif o["status"] != "unpaid":
                outcome = "already_paid"  # e.g. TRADE_FINISHED after TRADE_SUCCESS
            else:
                outcome = "paid"
                conn.execute(
                    "UPDATE orders SET status = 'paid', paid_at = ?, trade_no = ?"
                    " WHERE out_trade_no = ? AND status = 'unpaid'",
                    (now_iso(), p.get("trade_no"), no),
                )
            conn.execute(
                "INSERT INTO notifications (jti, out_trade_no, outcome, trade_status, total_amount, received_at, exp)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (c["jti"], no, outcome, status, amount, now_iso(), int(c.get("exp", 0))),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        if outcome in ("unknown_order", "amount_mismatch", "refund_unknown_order", "refund_unpaid"):
            # Answered success all the same: a retry would not change it. Someone must look.
            log(f"notify {c['jti']}: {outcome}: out_trade_no={json.dumps(no)}"
                f" total_amount={json.dumps(amount)} trade_status={json.dumps(status)}"
                f" refund_fee={json.dumps(p.get('refund_fee'))}")
        self.send(200, b"success", "text/plain")  # Caddy answers Alipay success: no more retries

    def refund(self, no: str):
        """Refunds a paid order in full. The out_request_no is fixed per order, so Alipay
        refunds once however often this runs (a double click, a retry after an error)."""
        with db() as conn:
            o = get_order(conn, no)
        if not o:
            return self.error(404, "No such order")
        if o["status"] != "paid":
            return self.order_page(no, 409, f"only a paid order can be refunded (this one is {o['status']})")
        try:
            r = call_api("alipay.trade.refund", {
                "out_trade_no": no, "refund_amount": o["total_amount"], "out_request_no": f"{no}-R1"})
            if r.get("code") != "10000":
                raise RuntimeError(f"{r.get('sub_msg') or r.get('msg')} ({r.get('sub_code') or r.get('code')})")
        except RuntimeError as err:
            log(f"refund {no}: {err}")
            return self.order_page(no, 502, str(err))
        fee = normalize_amount(r.get("refund_fee")) or o["total_amount"]
        with db() as conn:
            conn.execute("UPDATE orders SET status = 'refunded', refund_fee = ? WHERE out_trade_no = ? AND status = 'paid'",
                         (fee, no))
        self.redirect(f"/orders/{no}")

    def alipay_return(self):
        c = self.claims("return")
        if c is None:
            return self.error(403, "Forbidden")
        no = c["params"].get("out_trade_no", "")
        if not TRADE_NO_RE.fullmatch(no):
            return self.error(400, "Bad return")
        with db() as conn:  # the return proves nothing about payment: only note it
            conn.execute("UPDATE orders SET returned_at = ? WHERE out_trade_no = ? AND returned_at IS NULL",
                         (now_iso(), no))
        self.redirect(f"/orders/{no}")


def main() -> None:
    CONF.update(config())
    init_db()
    server = ThreadingHTTPServer(("127.0.0.1", CONF["port"]), Shop)
    server.daemon_threads = True
    log(f"listening on http://127.0.0.1:{server.server_address[1]}/ (db {CONF['db']})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
