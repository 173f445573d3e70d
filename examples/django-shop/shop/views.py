"""The demo shop's views: the Django seeds' Alipay views, rewritten for caddy-alipay.

Before (the seeds our users come from):

- seed 000, OpenAPI with RSA2: an AliPay class holding the app's private key
  and Alipay's public key; ``AlipayView(APIView)`` whose ``get`` verified the
  return and ``post`` the notification, both reading ``request.GET`` /
  ``request.POST``; a serializer field that RSA-signed the page-pay URL.
- seed 002, legacy 即时到账 with MD5: ``pay`` built and MD5-signed a
  create_direct_pay_by_user URL with the partner key; ``alipay_notify_url``
  and ``alipay_return_url`` checked the MD5 and asked notify_verify.

After: no key, no AliPay class, no signing or verifying of Alipay's
signatures. Caddy (the alipay handler) does all of it and forwards each
verified callback with an X-Alipay-Token, an HS256 JWT signed with the
secret shared with the shop. The views keep their names:

- ``pay(order)``: the pay link, a short pay token to Caddy's /alipay/pay;
- ``AlipayView``: ``post`` the notification, ``get`` the return, reading
  the order from the token's claims, never from the raw form or query;
- ``alipay_notify_url`` / ``alipay_return_url``: AlipayView's two halves,
  on /alipay/notify and /alipay/return, where Caddy forwards them.

The same code works behind the sidecar in either protocol: OpenAPI (aud the
app id, params with total_amount) or legacy (aud the partner id, a claim
"protocol": "legacy", params with the callback's own total_fee). Both
TRADE_SUCCESS and TRADE_FINISHED mean paid (seed 002 acted on TRADE_SUCCESS
only, which a plain 即时到账 partner never gets).

Refunds go through the sidecar's API in both protocols: alipay.trade.refund
(OpenAPI), or refund_fastpay_by_platform_nopwd (legacy), whose result comes
later as a batch_refund_notify. The notification that follows a refund is
recorded, and never taken for a payment.
"""

import datetime
import decimal
import json
import logging
import re
import secrets
import urllib.error
import urllib.request

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from .alipay_token import make_pay_token, verify_alipay_token
from .models import Notification, Order, RefundBatch

log = logging.getLogger("shop")
SHOP = settings.SHOP

# Prices are strings of yuan with 2 decimals; the buyer never sends one.
PRODUCTS = {
    "sticker": {"name": "Sticker", "amount": "0.01"},
    "mug": {"name": "Coffee mug", "amount": "9.90"},
    "tea": {"name": "西湖龙井 Longjing tea, 250 g", "amount": "88.80"},
}
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")  # in both protocols
TRADE_NO_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
AMOUNT_RE = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,2}))?")
# The callback's amount field, by the token's "protocol" claim (none: OpenAPI).
AMOUNT_FIELD = {"openapi": "total_amount", "legacy": "total_fee"}
# The notification after a refund is the trade's own notification again, with
# these fields: OpenAPI's refund_fee (the total refunded so far), gmt_refund
# and out_biz_no (the refund's out_request_no), trade_status TRADE_SUCCESS
# after a partial refund and TRADE_CLOSED after a full one; the legacy trade
# notification's refund_status and gmt_refund. Never a payment. (The legacy
# refund's own result is another notification: notify_type batch_refund_notify.)
REFUND_FIELDS = ("refund_fee", "out_biz_no", "gmt_refund", "refund_status")
CHINA = datetime.timezone(datetime.timedelta(hours=8), "CST")  # batch_no starts with the date there
REFUND_REASON = "退货"  # the legacy batch item's reason: no ^ $ | #


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303  # after a POST: the browser GETs the order page


def normalize_amount(s):
    """ "88.8" -> "88.80"; None unless a plain decimal of yuan with at most 2 decimals."""
    m = AMOUNT_RE.fullmatch(s) if isinstance(s, str) else None
    if not m:
        return None
    return f"{int(m.group(1))}.{(m.group(2) or '').ljust(2, '0')}"


def larger_amount(a, b):
    """The larger of two amounts (either may be None): Alipay's refund_fee only grows,
    so a late notification of an earlier refund never lowers the shop's record."""
    return max((x for x in (a, b) if x), key=decimal.Decimal, default=None)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None  # stored in UTC (USE_TZ)


def text(status, body):
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def error(request, status, msg):
    return render(request, "shop/error.html", {"title": msg}, status=status)


def token_claims(request, event):
    """The verified X-Alipay-Token's claims, or None. Only these are trusted.

    The token check is the README's: HS256 pinned, the MAC compared in
    constant time, iss caddy-alipay, aud ALIPAY_APP_ID, exp with 60 s leeway.
    """
    try:
        c = verify_alipay_token(request.headers.get("X-Alipay-Token", ""), SHOP["secret"], SHOP["app_id"])
        params = c.get("params")
        if (c.get("event") != event or not isinstance(c.get("jti"), str) or not c["jti"]
                or not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values())):
            raise ValueError("not a " + event + " token")
        if c.get("protocol", "openapi") not in AMOUNT_FIELD:
            raise ValueError(f"unknown protocol {c.get('protocol')!r}")
        return c
    except Exception as err:  # noqa: BLE001 - any malformed token is refused alike
        log.warning("%s: refused X-Alipay-Token: %s", event, err)
        return None


def pay(order):
    """The pay link of an unpaid order: seed 002's pay(), rewritten.

    Seed 002 MD5-signed a create_direct_pay_by_user URL with the partner key
    (and seed 000's serializer RSA-signed an alipay.trade.page.pay). Here the
    shop signs only a short pay token with the shared secret; Caddy's
    /alipay/pay turns it into the request of whichever protocol it is set up
    for (the token is the same in both: the sidecar maps total_amount to the
    legacy total_fee) and sends the browser to the gateway. A fresh token on
    each view; the amount comes from the database, never from the browser.
    """
    token = make_pay_token({
        "out_trade_no": order.out_trade_no, "total_amount": order.total_amount,
        "subject": order.subject, "product": "page",
    }, SHOP["secret"], SHOP["pay_ttl"])
    return "/alipay/pay?token=" + token


@require_safe
def products(request):
    items = [{"id": pid, **p} for pid, p in PRODUCTS.items()]
    return render(request, "shop/products.html", {"title": "Products", "products": items})


@require_POST
def create_order(request):  # CSRF-protected: the product page's forms carry the token
    pid = request.POST.get("product", "")
    product = PRODUCTS.get(pid)
    if not product:
        return error(request, 400, "Unknown product")
    no = "T" + secrets.token_hex(12).upper()
    Order.objects.create(out_trade_no=no, product=pid, subject=product["name"],
                         total_amount=product["amount"], status="unpaid", created_at=timezone.now())
    return HttpResponseSeeOther(f"/orders/{no}")


def refund_pending(o):
    """A legacy refund batch that Alipay accepted, whose result has not come yet."""
    return o.status == "paid" and o.refund_requested_at is not None and o.refund_error is None


def latest_batch(no):
    """The order's latest legacy refund batch, or None."""
    return RefundBatch.objects.filter(out_trade_no=no).order_by("-sent_at").first()


def batch_no(o):
    """The legacy refund's batch_no: today's date in China Standard Time and the
    order number's 24 hex digits (out_trade_no is "T" and those), one batch per
    order and day. Alipay takes a batch_no once, so a double click or a retry
    after an error sends the same batch again and cannot refund twice."""
    day = timezone.now().astimezone(CHINA).strftime("%Y%m%d")
    return day + o.out_trade_no[1:]


def show_order(request, no, status=200, refund_error=None):
    o = Order.objects.filter(pk=no).first()
    if not o:
        return error(request, 404, "No such order")
    confirming = o.status == "unpaid" and o.returned_at is not None
    pending = refund_pending(o)
    batch = latest_batch(no)
    return render(request, "shop/order.html", {
        "title": f"Order {no}",
        "o": o,
        "batch_no": batch.batch_no if batch else None,
        "paid_at": iso(o.paid_at),
        "refund_pending": pending,
        "refund_error": refund_error,
        "confirming": confirming,
        # reload every 2 s until the notification marks it paid, or refunded
        "refresh": confirming or pending,
        "pay_url": pay(o) if o.status == "unpaid" else None,
    }, status=status)


@require_safe
def order_page(request, no):
    return show_order(request, no)


@require_safe
def order_json(request, no):
    """The order for tests and the demo; a real shop would not publish it."""
    o = Order.objects.filter(pk=no).first()
    if not o:
        return HttpResponse('{"error":"not found"}', status=404, content_type="application/json")
    doc = {
        "out_trade_no": o.out_trade_no,
        "total_amount": o.total_amount,
        "status": o.status,
        "notifications": Notification.objects.filter(out_trade_no=no, outcome="paid").count(),
        "notify_calls": o.notify_calls,
        "paid_at": iso(o.paid_at),
        "trade_no": o.trade_no,
        "refund_fee": o.refund_fee,
        "refund_notifications": Notification.objects.filter(out_trade_no=no, outcome__startswith="refund").count(),
        "refund_notified_at": iso(o.refund_notified_at),
        "refund_batch_no": getattr(latest_batch(no), "batch_no", None),
        "refund_requested_at": iso(o.refund_requested_at),
        "refund_error": o.refund_error,
    }
    return HttpResponse(json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
                        content_type="application/json")


@method_decorator(csrf_exempt, name="dispatch")  # Caddy posts the notification: no CSRF token
class AlipayView(View):
    """Seed 000's AlipayView, rewritten: post is the notification, get the return.

    A plain Django View: no REST framework, no AliPay object, no sign to
    pop and verify. Caddy has verified Alipay's signature (and, in the
    legacy protocol, asked notify_verify) before the request gets here;
    the shop checks Caddy's token and reads everything from its claims.
    """

    def post(self, request):
        """The notification. Answers the body "success" only once the order is
        saved (or the notification is a repeat of one already done), as seed
        002's view answered Alipay: Caddy then answers Alipay "success". Any
        other answer makes Caddy answer "fail" (a 2xx without "success" too),
        and Alipay sends the notification again.

        Three kinds, all answered so: a payment's (trade_status_sync), the
        one that follows a refund (the same, with refund_fee and out_biz_no, or
        the legacy refund_status), and the legacy refund batch's result
        (notify_type batch_refund_notify). Only the first can pay an order."""
        c = token_claims(request, "notify")  # the raw form body is ignored: only the token counts
        if c is None:
            return text(403, "forbidden\n")
        p = c["params"]
        protocol = c.get("protocol", "openapi")
        if protocol == "legacy" and p.get("notify_type") == "batch_refund_notify":
            return self.batch_refund_notify(c)
        no = p.get("out_trade_no", "")
        status = p.get("trade_status", "")
        amount = p.get(AMOUNT_FIELD[protocol], "")  # total_amount, or the legacy total_fee
        refund = any(k in p for k in REFUND_FIELDS)
        # One writer at a time (BEGIN IMMEDIATE, shopsite/sqlite_immediate): the
        # check and the update are atomic, and the jti is recorded in the same
        # transaction, so it is kept only if the update commits.
        with transaction.atomic():
            Order.objects.filter(pk=no).update(notify_calls=F("notify_calls") + 1)
            if Notification.objects.filter(pk=c["jti"]).exists():
                return text(200, "success")  # a repeat (same notify_id): already done
            o = Order.objects.filter(pk=no).first()
            if refund:
                outcome = self.trade_refunded(o, p)
            elif not o:
                outcome = "unknown_order"
            elif normalize_amount(amount) != normalize_amount(o.total_amount):
                outcome = "amount_mismatch"  # "88.8" equals "88.80"
            elif status not in PAID_STATUSES:
                outcome = "not_paid_status"  # WAIT_BUYER_PAY, TRADE_CLOSED
            elif o.status != "unpaid":
                # e.g. TRADE_FINISHED after TRADE_SUCCESS, or a legacy retry
                # with a new notify_id: idempotent on out_trade_no too.
                outcome = "already_paid"
            else:
                outcome = "paid"
                Order.objects.filter(pk=no, status="unpaid").update(
                    status="paid", paid_at=timezone.now(), trade_no=p.get("trade_no"), paid_protocol=protocol)
            Notification.objects.create(
                jti=c["jti"], out_trade_no=no, outcome=outcome, protocol=protocol, trade_status=status,
                total_amount=amount, received_at=timezone.now(), exp=int(c.get("exp", 0)))
        if outcome in ("unknown_order", "amount_mismatch", "refund_unknown_order", "refund_unpaid"):
            # Answered "success" all the same: a retry would not change it. Someone must look.
            log.warning("notify %s: %s: out_trade_no=%s %s=%s trade_status=%s refund_fee=%s", c["jti"], outcome,
                        json.dumps(no), AMOUNT_FIELD[protocol], json.dumps(amount), json.dumps(status),
                        json.dumps(p.get("refund_fee")))
        return text(200, "success")  # Caddy answers Alipay "success": no more retries

    @staticmethod
    def trade_refunded(o, p):
        """Records the trade notification that follows a refund (the shop's own,
        or one made in the merchant portal or the sandbox's trade page) and
        returns its outcome. It never pays: an unpaid order stays unpaid, and a
        refunded one refunded, whatever its trade_status."""
        if not o:
            return "refund_unknown_order"
        if o.status == "unpaid":
            return "refund_unpaid"  # a refund of a payment the shop never saw
        fee = normalize_amount(p.get("refund_fee"))  # OpenAPI's total refunded so far; none in legacy
        full = p.get("trade_status") == "TRADE_CLOSED" or fee == normalize_amount(o.total_amount)
        outcome = "refund_partial" if not full else "refunded" if o.status == "paid" else "refund_recorded"
        changes = {"refund_fee": larger_amount(o.refund_fee, fee or (o.total_amount if full else None)),
                   "refund_notified_at": o.refund_notified_at or timezone.now()}
        if outcome == "refunded":  # refunded in full, but not through this shop's button (or before its answer)
            changes["status"] = "refunded"
        Order.objects.filter(pk=o.pk).update(**changes)
        return outcome

    def batch_refund_notify(self, c):
        """The legacy refund's result: batch_no, success_num and result_details,
        items "<trade_no>^<amount>^SUCCESS" (or an error code in place of
        SUCCESS, and "$..." after an item for a fee refund) joined by "#". It
        names Alipay's trade_no, not out_trade_no, and counts only for a batch
        that this shop sent, for that batch's trade. An order turns refunded
        on its item's SUCCESS only (the API's is_success T said only that the
        batch was accepted), once, whatever the notify_id: whether Alipay
        gives a retried legacy notification a new one is not documented."""
        p = c["params"]
        items = []
        for item in p.get("result_details", "").split("#"):
            parts = item.split("$", 1)[0].split("^")
            if len(parts) >= 3 and parts[0]:
                items.append((parts[0], parts[1], parts[2]))
            elif item:
                log.warning("notify %s: batch %s: unreadable item %s", c["jti"], json.dumps(p.get("batch_no")),
                            json.dumps(item))
        outcomes = []
        with transaction.atomic():
            Order.objects.filter(trade_no__in=[i[0] for i in items]).update(notify_calls=F("notify_calls") + 1)
            if Notification.objects.filter(pk=c["jti"]).exists():
                return text(200, "success")  # a repeat (same notify_id): already done
            batch = RefundBatch.objects.filter(pk=p.get("batch_no", "")).first()
            for trade_no, amount, result in items:
                if not batch or trade_no != batch.trade_no:
                    outcomes.append(("", trade_no, amount, result, "refund_not_ours"))
                    continue
                o = Order.objects.filter(pk=batch.out_trade_no).first()
                outcomes.append((batch.out_trade_no, trade_no, amount, result, self.batch_item(o, batch, amount, result)))
            # One row per notification: about the batch's own item, the one a batch of this shop has.
            mine = [x for x in outcomes if x[0]] or outcomes or [("", "", "", "", "refund_not_ours")]
            no, _, amount, result, outcome = mine[0]
            Notification.objects.create(
                jti=c["jti"], out_trade_no=no, outcome=outcome, protocol="legacy", trade_status=result[:32],
                total_amount=amount[:32], received_at=timezone.now(), exp=int(c.get("exp", 0)))
        for no, trade_no, amount, result, outcome in outcomes or mine:
            if outcome not in ("refunded", "refund_recorded"):  # answered success all the same: someone must look
                log.warning("notify %s: batch %s: %s: out_trade_no=%s trade_no=%s amount=%s result=%s", c["jti"],
                            json.dumps(p.get("batch_no")), outcome, json.dumps(no), json.dumps(trade_no),
                            json.dumps(amount), json.dumps(result))
        return text(200, "success")

    @staticmethod
    def batch_item(o, batch, amount, result):
        """Records the item of a batch_refund_notify for the order o of one of
        the shop's batches, and returns its outcome. It never pays."""
        if not o:
            return "refund_unknown_order"
        if o.status == "unpaid":
            return "refund_unpaid"
        if result != "SUCCESS":  # nothing refunded: the Refund button comes back, with the code
            if o.status == "paid" and batch == latest_batch(o.pk):  # not a late result of an older try
                Order.objects.filter(pk=o.pk).update(refund_error=result[:64])
            return "refund_failed"
        if normalize_amount(amount) != normalize_amount(batch.amount):
            return "refund_partial"  # not what the shop asked for: someone must look
        changes = {"refund_notified_at": o.refund_notified_at or timezone.now(), "refund_fee": normalize_amount(amount)}
        if o.status == "refunded":  # by an earlier notification of this batch (a new notify_id)
            Order.objects.filter(pk=o.pk).update(**changes)
            return "refund_recorded"
        Order.objects.filter(pk=o.pk, status="paid").update(status="refunded", refund_error=None, **changes)
        return "refunded"

    def get(self, request):
        """The buyer back from Alipay. The return proves only that: it changes
        nothing but a note, and the order page shows the database's status,
        which only the notification sets to paid (seed 000 wrote the return's
        trade_no and pay_time into the order)."""
        c = token_claims(request, "return")
        if c is None:
            return error(request, 403, "Forbidden")
        no = c["params"].get("out_trade_no", "")
        if not TRADE_NO_RE.fullmatch(no):
            return error(request, 400, "Bad return")
        Order.objects.filter(pk=no, returned_at__isnull=True).update(returned_at=timezone.now())
        return HttpResponseSeeOther(f"/orders/{no}")


# Seed 002's two views are AlipayView's two halves, on the paths that Caddy
# forwards the verified callbacks to.
alipay_notify_url = AlipayView.as_view(http_method_names=["post"])
alipay_return_url = AlipayView.as_view(http_method_names=["get", "head"])


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the sidecar is near: no proxy


def call_api(method, biz):
    """POSTs biz_content to the sidecar's {prefix}/api/<method>; returns Alipay's verified answer.

    Raises RuntimeError with a message for the buyer when the call itself failed.
    """
    req = urllib.request.Request(
        f"{SHOP['sidecar']}/alipay/api/{method}", data=json.dumps(biz).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Bearer " + make_pay_token({"scope": "api"}, SHOP["secret"], 300)})
    try:
        with NO_PROXY.open(req, timeout=20) as res:
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


@require_POST
def refund(request, no):
    """Refunds a paid order in full through the sidecar's API, in the protocol
    it was paid in. CSRF-protected; a real shop would also let only its staff
    do it.

    OpenAPI: alipay.trade.refund, with an out_request_no fixed per order, so
    Alipay refunds once however often this runs (a double click, a retry
    after an error); its answer says refunded. Legacy:
    refund_fastpay_by_platform_nopwd, a batch of one, whose batch_no is fixed
    per order and day for the same reason; its answer (is_success T) says
    only that Alipay accepted the batch, and the order turns refunded when
    the batch_refund_notify says SUCCESS for its trade_no."""
    o = Order.objects.filter(pk=no).first()
    if not o:
        return error(request, 404, "No such order")
    if o.status != "paid":
        return show_order(request, no, 409, f"only a paid order can be refunded (this one is {o.status})")
    if o.paid_protocol == "legacy":
        return refund_legacy(request, o)
    try:
        r = call_api("alipay.trade.refund", {
            "out_trade_no": no, "refund_amount": o.total_amount, "out_request_no": f"{no}-R1"})
        if r.get("code") != "10000":
            raise RuntimeError(f"{r.get('sub_msg') or r.get('msg')} ({r.get('sub_code') or r.get('code')})")
    except RuntimeError as err:
        log.warning("refund %s: %s", no, err)
        return show_order(request, no, 502, str(err))
    fee = normalize_amount(r.get("refund_fee")) or o.total_amount
    Order.objects.filter(pk=no, status="paid").update(status="refunded", refund_fee=fee)
    return HttpResponseSeeOther(f"/orders/{no}")


def refund_legacy(request, o):
    no = o.out_trade_no
    if refund_pending(o):
        return show_order(request, no, 409, f"a refund of this order was requested at {iso(o.refund_requested_at)}: "
                                            "Alipay's result has not come yet")
    if not o.trade_no:
        return show_order(request, no, 409, "the payment's notification named no Alipay trade number")
    batch = batch_no(o)
    # After a batch that Alipay did not refund (refund_error): this is a new try.
    Order.objects.filter(pk=no, status="paid", refund_error__isnull=False).update(
        refund_requested_at=None, refund_error=None)
    # Recorded before it is sent: its result may come before the answer does.
    RefundBatch.objects.get_or_create(batch_no=batch, defaults={
        "out_trade_no": no, "trade_no": o.trade_no, "amount": o.total_amount, "sent_at": timezone.now()})
    try:
        r = call_api("refund_fastpay_by_platform_nopwd", {
            "batch_no": batch,
            "refunds": [{"trade_no": o.trade_no, "amount": o.total_amount, "reason": REFUND_REASON}]})
        if r.get("is_success") != "T":
            raise RuntimeError(f"Alipay did not accept the refund batch {batch} ({r.get('error') or 'no error code'})")
    except RuntimeError as err:
        log.warning("refund %s: %s", no, err)
        o = Order.objects.get(pk=no)
        if o.status == "refunded" or refund_pending(o):  # a double click: the other request got there
            return HttpResponseSeeOther(f"/orders/{no}")
        return show_order(request, no, 502, str(err))
    # Accepted: the order waits for the batch_refund_notify (which may be in already).
    Order.objects.filter(pk=no).update(refund_requested_at=timezone.now())
    return HttpResponseSeeOther(f"/orders/{no}")
