"""The shop's routes: the same as the Python and PHP shops'.

Caddy answers /alipay/pay and /alipay/api/* itself and forwards only
verified callbacks, to /alipay/notify and /alipay/return (unless its
forward_notify and forward_return say otherwise). There they reach
AlipayView's two halves, which keep seed 002's names.
"""
from django.urls import path, re_path

from shop import views

NO = r"(?P<no>[A-Za-z0-9_]{1,64})"  # an out_trade_no

urlpatterns = [
    path("", views.products),
    path("orders", views.create_order),
    re_path(rf"^orders/{NO}$", views.order_page),
    re_path(rf"^orders/{NO}\.json$", views.order_json),
    re_path(rf"^orders/{NO}/refund$", views.refund),
    path("alipay/notify", views.alipay_notify_url),  # POST, from Caddy, csrf exempt
    path("alipay/return", views.alipay_return_url),  # GET
]
