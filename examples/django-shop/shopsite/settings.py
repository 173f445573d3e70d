"""Settings of the Django demo shop behind caddy-alipay.

Everything the shop needs comes from the environment, as for the Python
and PHP shops:

  SHOP_SECRET       the secret shared with Caddy, at least 32 bytes (required)
  ALIPAY_APP_ID     the token's aud to accept (required): the app's APPID
                    (OpenAPI, Caddy's app_id) or the partner id, 2088 and 12
                    digits (legacy 即时到账, Caddy's partner)
  SHOP_PORT         port on 127.0.0.1 (default 8000; read by serve.py)
  SHOP_DB           sqlite file (default shop.db beside manage.py)
  SHOP_PAY_TTL      pay token lifetime in seconds (default 900)
  SHOP_SIDECAR_URL  where the shop reaches Caddy's API (default http://127.0.0.1:8080)

There is no Alipay key here, and no AliPay class: Caddy holds the keys.
"""
import hashlib
import hmac
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_secret = os.environ.get("SHOP_SECRET", "")
_app_id = os.environ.get("ALIPAY_APP_ID", "")
if len(_secret.encode()) < 32:
    raise ImproperlyConfigured("SHOP_SECRET must be set to the secret shared with Caddy, at least 32 bytes")
if not _app_id:
    raise ImproperlyConfigured("ALIPAY_APP_ID must be set to the app's APPID (or the legacy partner id)")

# What the shop's own code reads (shop/views.py).
SHOP = {
    "secret": _secret,
    "app_id": _app_id,
    "pay_ttl": int(os.environ.get("SHOP_PAY_TTL") or "900"),
    "sidecar": (os.environ.get("SHOP_SIDECAR_URL") or "http://127.0.0.1:8080").rstrip("/"),
}

# Django's own signing key (nothing here uses it: no sessions, no auth). It is
# derived from the shared secret so that it is stable and is not that secret.
SECRET_KEY = hmac.new(_secret.encode(), b"django SECRET_KEY of the demo shop", hashlib.sha256).hexdigest()

DEBUG = False
# The shop listens on loopback and is reached through Caddy, whose
# reverse_proxy passes the browser's Host on: the demo's is 127.0.0.1:8080.
# A real shop adds its own host name here.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = ["shop"]  # no admin, no auth, no sessions

MIDDLEWARE = [
    "shop.middleware.shop_middleware",  # 64 KiB body limit, Cache-Control: no-store
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # every POST but Caddy's /alipay/notify
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shopsite.urls"
WSGI_APPLICATION = "shopsite.wsgi.application"
APPEND_SLASH = False  # the routes are exactly the Python shop's

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},  # {% csrf_token %} needs none
    }
]

DATABASES = {
    "default": {
        "ENGINE": "shopsite.sqlite_immediate",  # Django's sqlite3, with BEGIN IMMEDIATE
        "NAME": os.environ.get("SHOP_DB") or str(BASE_DIR / "shop.db"),
        "OPTIONS": {"timeout": 10},  # seconds to wait for the write lock
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
LANGUAGE_CODE = "en"

# The shop reads no form larger than this (the Python shop's limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = 65536

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "shop": {"format": "shop: %(message)s"},
        "django": {"format": "django: %(levelname)s %(message)s"},
    },
    "handlers": {  # stderr
        "shop": {"class": "logging.StreamHandler", "formatter": "shop"},
        "django": {"class": "logging.StreamHandler", "formatter": "django"},
    },
    "loggers": {
        "shop": {"handlers": ["shop"], "level": "INFO", "propagate": False},
        # With DEBUG off Django would print no traceback of a 500 anywhere.
        "django": {"handlers": ["django"], "level": "WARNING", "propagate": False},
    },
}
