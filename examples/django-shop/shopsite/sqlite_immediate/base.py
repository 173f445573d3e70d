"""Django's SQLite backend, with transaction.atomic() starting BEGIN IMMEDIATE.

Django (before 5.1's "transaction_mode" option) opens atomic() with a plain,
deferred BEGIN: the transaction reads first and asks for the write lock only
at its first write, and when another connection has written in between,
SQLite refuses the upgrade at once ("database is locked") instead of
waiting. Six deliveries of one notification at the same moment would then
answer 500 at random. BEGIN IMMEDIATE takes the write lock up front,
waiting up to OPTIONS["timeout"] seconds for it, so the notify view's check
and update are one atomic step, as the Python shop's BEGIN IMMEDIATE makes
them. WAL lets the order pages read meanwhile.

settings.DATABASES names it as ENGINE "shopsite.sqlite_immediate".
"""
from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        conn = super().get_new_connection(conn_params)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _start_transaction_under_autocommit(self):
        self.cursor().execute("BEGIN IMMEDIATE")
