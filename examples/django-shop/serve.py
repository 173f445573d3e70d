#!/usr/bin/python3
"""Runs the Django demo shop on 127.0.0.1:$SHOP_PORT (default 8000).

    /usr/bin/python3 examples/django-shop/serve.py

Applies the migrations to SHOP_DB (creating it), then serves the WSGI
application with the standard library's wsgiref, one thread a request, on
loopback only: the shop must be reachable only through Caddy. Any WSGI
server will do instead (shopsite.wsgi:application), bound to loopback;
so will `manage.py migrate` and then `manage.py runserver 127.0.0.1:PORT
--noreload`. Settings come from the environment: see shopsite/settings.py.

Use Debian's /usr/bin/python3 with python3-django (the python3 first on
PATH may be another one, without Django).
"""
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64


class Handler(WSGIRequestHandler):
    def get_environ(self):
        # As Django's runserver does: drop headers with "_" in the name, which
        # WSGI would fold onto the same variable as the "-" spelling
        # (X_Alipay_Token onto HTTP_X_ALIPAY_TOKEN). Caddy strips them too.
        for k in [k for k in self.headers if "_" in k]:
            del self.headers[k]
        return super().get_environ()


def main():
    try:
        import django
    except ImportError:
        sys.exit("shop: Django is missing: run this with /usr/bin/python3 after apt-get install python3-django")
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as err:
        sys.exit(f"shop: {err}")
    from django.conf import settings
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", interactive=False, verbosity=0)
    app = get_wsgi_application()
    port = int(os.environ.get("SHOP_PORT") or "8000")
    with make_server("127.0.0.1", port, app, server_class=Server, handler_class=Handler) as server:
        print(f"shop: listening on http://127.0.0.1:{server.server_address[1]}/"
              f" (db {settings.DATABASES['default']['NAME']}, Django {django.get_version()})",
              file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
