"""Planner statistics after a bulk load: PostgreSQL's ANALYZE on the tables it filled, at once.

Autovacuum gathers statistics only some time after a load; until then the planner guesses, and after a
fresh bulk import the pair list took 7.8 s a request instead of 0.1 s (bench/README.md). SQLite is left
alone on purpose: it keeps no statistics unless ANALYZE is run and nothing would keep them fresh, so one
ANALYZE at import time would leave plans driven by that moment's numbers as the library grows, while its
built-in estimates are what the queries were measured with.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Model


def planner_statistics_refresh(*, models: Iterable[type[Model]]) -> list[str]:
    """ANALYZE these models' tables on PostgreSQL; the tables analysed (none on other databases)."""
    if connection.vendor != "postgresql":
        return []
    tables = list(dict.fromkeys(model._meta.db_table for model in models))
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return tables
