"""The shared cache on the embedded default: Django's database cache, with one statement per set and an
atomic ``incr``.

Django's ``DatabaseCache.set`` counts the whole table (``SELECT COUNT(*)``) on every call to decide whether
to cull, then reads the key and updates or inserts it in a transaction: 4-5 statements for each write.
``set`` here is one upsert; the count and cull run on every ``CULL_EVERY``-th set of a process, so the
table can exceed ``MAX_ENTRIES`` by at most ``CULL_EVERY`` rows per process between culls.

Django's ``incr`` is a ``get`` then a ``set``: two processes incrementing at once both write the same total
and one increment is lost. Rate limits count with ``incr`` (core/rate_limit.py), so here it reads and writes
the row inside one transaction that holds it: ``SELECT ... FOR UPDATE`` locks the row on PostgreSQL, and on
SQLite the transaction is ``IMMEDIATE`` (settings), holding the database's write lock from its first
statement. Reads, ``add``, ``touch`` and deletes are Django's (``add`` inserts: of two at once, one wins).
"""

from __future__ import annotations

import base64
import itertools
import pickle
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router, transaction
from django.utils.timezone import now as tz_now

# Sets per process between two counts of the table (Django counts on every set).
CULL_EVERY = 100
# Databases whose INSERT ... ON CONFLICT DO UPDATE this speaks (the tested ones); others get Django's set.
UPSERT_VENDORS = ("postgresql", "sqlite")


class SharedDatabaseCache(DatabaseCache):
    """DatabaseCache whose ``set`` is a single upsert and culls only every ``CULL_EVERY``-th time."""

    _sets = itertools.count()

    def set(self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        """One INSERT ... ON CONFLICT DO UPDATE, so a rate-limit hit costs one statement, not four or five."""
        connection = connections[router.db_for_write(self.cache_model_class)]
        if next(self._sets) % CULL_EVERY == 0 or connection.vendor not in UPSERT_VENDORS:
            super().set(key, value, timeout, version)  # counts the table and culls it if over MAX_ENTRIES
            return
        key = self.make_and_validate_key(key, version=version)
        backend_timeout = self.get_backend_timeout(timeout)
        if backend_timeout is None:
            expires = datetime.max
        else:
            expires = datetime.fromtimestamp(backend_timeout, tz=UTC if settings.USE_TZ else None)
        expires = expires.replace(microsecond=0)
        encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote(self._table)} ({quote('cache_key')}, {quote('value')}, {quote('expires')}) "
                f"VALUES (%s, %s, %s) ON CONFLICT ({quote('cache_key')}) DO UPDATE "
                f"SET {quote('value')} = excluded.{quote('value')}, {quote('expires')} = excluded.{quote('expires')}",
                [key, encoded, connection.ops.adapt_datetimefield_value(expires)],
            )

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """Add `delta` to a stored number while holding its row, so that concurrent increments all count."""
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table, cache_key, value_column = quote(self._table), quote("cache_key"), quote("value")
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        now = connection.ops.adapt_datetimefield_value(tz_now().replace(microsecond=0))
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {value_column} FROM {table} WHERE {cache_key} = %s AND {quote('expires')} > %s{lock}",
                [key, now],
            )
            row = cursor.fetchone()
            if row is None:
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(row[0]).encode())) + delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(f"UPDATE {table} SET {value_column} = %s WHERE {cache_key} = %s", [encoded, key])
        return value
