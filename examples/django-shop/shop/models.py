"""The shop's two tables: orders, and the notifications that acted on them.

Seed 000's OrderInfo copied Alipay's trade_status into its pay_status on
every callback, so a late WAIT_BUYER_PAY or TRADE_CLOSED could overwrite a
payment. Here the shop keeps its own status, which moves only forward:
unpaid -> paid (a paying notification, once) -> refunded (a refund: the
API's answer in OpenAPI, the refund's notification in either protocol).
"""
from django.db import models

STATUSES = [("unpaid", "unpaid"), ("paid", "paid"), ("refunded", "refunded")]
PROTOCOLS = [("openapi", "openapi"), ("legacy", "legacy")]  # OpenAPI (RSA2), or legacy 即时到账 (partner)
# A payment's notification: paid: moved the order from unpaid to paid;
# already_paid: the order was paid or refunded before (e.g. TRADE_FINISHED
# after TRADE_SUCCESS); amount_mismatch; unknown_order; not_paid_status:
# WAIT_BUYER_PAY, TRADE_CLOSED.
# A refund's (OpenAPI: refund_fee, out_biz_no; legacy: batch_refund_notify),
# which never pays: refunded: moved the order from paid to refunded;
# refund_recorded: the order was refunded already (the API's answer, or an
# earlier notification); refund_partial: less than the whole amount;
# refund_failed: Alipay did not refund (a legacy batch's item); refund_unpaid:
# the order is not paid; refund_unknown_order; refund_not_ours: a legacy batch
# (or an item of it) that this shop did not send.
OUTCOMES = [(o, o) for o in (
    "paid", "already_paid", "amount_mismatch", "unknown_order", "not_paid_status", "refunded", "refund_recorded",
    "refund_partial", "refund_failed", "refund_unpaid", "refund_unknown_order", "refund_not_ours")]


class Order(models.Model):
    out_trade_no = models.CharField(primary_key=True, max_length=64)
    product = models.CharField(max_length=32)
    subject = models.CharField(max_length=256)
    total_amount = models.CharField(max_length=16)  # yuan with 2 decimals, "9.90", as Alipay writes it
    status = models.CharField(max_length=16, choices=STATUSES, default="unpaid")
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True)
    trade_no = models.CharField(max_length=64, null=True)  # Alipay's, from the paying notification
    # The protocol of the paying notification (the token's "protocol" claim):
    # the sidecar's API, and so the refund button, is there only for openapi.
    paid_protocol = models.CharField(max_length=16, choices=PROTOCOLS, null=True)
    returned_at = models.DateTimeField(null=True)  # the buyer came back from Alipay
    notify_calls = models.IntegerField(default=0)  # notify requests with a valid token, repeats included
    refund_fee = models.CharField(max_length=16, null=True)  # "9.90" once refunded
    refund_notified_at = models.DateTimeField(null=True)  # the first refund notification that named the order
    # Legacy: when Alipay accepted the order's latest refund batch
    # (refund_fastpay_by_platform_nopwd answered is_success T), whose result
    # comes later as a batch_refund_notify; and the code of its item if Alipay
    # did not refund it.
    refund_requested_at = models.DateTimeField(null=True)
    refund_error = models.CharField(max_length=64, null=True)


class RefundBatch(models.Model):
    """A legacy refund batch that the shop sent, written before it is sent: a
    batch_refund_notify counts only for one of these, and only for its trade
    (a partner signing with RSA shares Alipay's key with every other one, so
    another partner's genuine refund result verifies too)."""

    batch_no = models.CharField(primary_key=True, max_length=32)
    out_trade_no = models.CharField(max_length=64, db_index=True)
    trade_no = models.CharField(max_length=64)  # Alipay's, the batch's one item
    amount = models.CharField(max_length=16)
    sent_at = models.DateTimeField()


class Notification(models.Model):
    """One row per notification (jti = notify_id), written in the transaction
    that acts on it, so a repeat is recognised and a rolled-back one is not."""

    jti = models.CharField(primary_key=True, max_length=128)
    out_trade_no = models.CharField(max_length=64, db_index=True)  # not a foreign key: unknown orders too ("" if none)
    outcome = models.CharField(max_length=32, choices=OUTCOMES)
    protocol = models.CharField(max_length=16, choices=PROTOCOLS)
    trade_status = models.CharField(max_length=32)  # a legacy refund batch item's: its result (SUCCESS or a code)
    total_amount = models.CharField(max_length=32)  # as notified: total_amount, or total_fee (legacy); a refund batch item's amount
    received_at = models.DateTimeField()
    exp = models.BigIntegerField()  # the token's; the rows are kept (a demo's table stays small)
