#!/usr/bin/env python3
"""Django's command-line utility for the demo shop (run it with Debian's /usr/bin/python3).

    /usr/bin/python3 examples/django-shop/manage.py migrate
    /usr/bin/python3 examples/django-shop/manage.py runserver 127.0.0.1:8002 --noreload

serve.py does both in one process, without the development server's banner.
"""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
