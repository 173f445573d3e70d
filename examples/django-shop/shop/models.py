"""The shop's two tables: orders, and the notifications that acted on them.

Seed 000's OrderInfo copied Alipay's trade_status into its pay_status on
every callback, so a late WAIT_BUYER_PAY or TRADE_CLOSED could overwrite a
payment. Here the shop keeps its own status, which moves only forward:
unpaid -> paid (a paying notification, once) -> refunded (a refund).
"""
from django.db import models

STATUSES = [("unpaid", "unpaid"), ("paid", "paid"), ("refunded", "refunded")]
PROTOCOLS = [("openapi", "openapi"), ("legacy", "legacy")]  # OpenAPI (RSA2), or legacy 即时到账 (partner)
# paid: moved the order from unpaid to paid; already_paid: the order was paid
# or refunded before (e.g. TRADE_FINISHED after TRADE_SUCCESS); amount_mismatch;
# unknown_order; not_paid_status: WAIT_BUYER_PAY, TRADE_CLOSED.
OUTCOMES = [(o, o) for o in ("paid", "already_paid", "amount_mismatch", "unknown_order", "not_paid_status")]


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


class Notification(models.Model):
    """One row per notification (jti = notify_id), written in the transaction
    that acts on it, so a repeat is recognised and a rolled-back one is not."""

    jti = models.CharField(primary_key=True, max_length=128)
    out_trade_no = models.CharField(max_length=64, db_index=True)  # not a foreign key: unknown orders too
    outcome = models.CharField(max_length=16, choices=OUTCOMES)
    protocol = models.CharField(max_length=16, choices=PROTOCOLS)
    trade_status = models.CharField(max_length=32)
    total_amount = models.CharField(max_length=32)  # as notified: total_amount, or total_fee (legacy)
    received_at = models.DateTimeField()
    exp = models.BigIntegerField()  # the token's; the rows are kept (a demo's table stays small)
