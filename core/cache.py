"""The shared cache on the embedded default: Django's database cache, with one statement per set.

Django's ``DatabaseCache.set`` counts the whole table (``SELECT COUNT(*)``) on every call to decide whether
to cull, then reads the key and updates or inserts it in a transaction: 4-5 statements for each rate-limit
hit. ``set`` here is one upsert; the count and cull run on every ``CULL_EVERY``-th set of a process, so
the table can exceed ``MAX_ENTRIES`` by at most ``CULL_EVERY`` rows per process between culls. Reads,
``add``, ``touch`` and deletes are Django's.
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
from django.db import connections, router

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
