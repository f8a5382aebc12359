"""Planner statistics after a bulk load: PostgreSQL's ANALYZE on the tables it filled, at once, and by the
writers that keep filling them (detection) whenever a table changed much since its last ANALYZE.

Autovacuum gathers statistics only some time after a load; until then the planner guesses, and after a
fresh bulk import the pair list took 7.8 s a request instead of 0.1 s (bench/README.md). SQLite is left
alone on purpose: it keeps no statistics unless ANALYZE is run and nothing would keep them fresh, so one
ANALYZE at import time would leave plans driven by that moment's numbers as the library grows, while its
built-in estimates are what the queries were measured with.

Autovacuum may be off or far behind (it is off on the machines this project is tested on): with no statistics
on a freshly filled pair table, the group refresh's pair query became an 800 x 800 nested loop, 3.4 s a step
(bench/topology.py), so detection does not wait for autovacuum either.
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


# A table is stale once this share of its rows changed since its last ANALYZE (autovacuum's default
# analyze_scale_factor is 0.1) and at least STALE_MIN_CHANGES rows did: small tables are planned well anyway.
STALE_SHARE = 0.2
STALE_MIN_CHANGES = 1000


def planner_statistics_refresh_if_stale(*, models: Iterable[type[Model]]) -> list[str]:
    """ANALYZE those of these models' tables that changed by STALE_SHARE of their rows (and STALE_MIN_CHANGES)
    since their last ANALYZE, by autovacuum or anyone; the tables analysed. One catalogue read when none is."""
    if connection.vendor != "postgresql":
        return []
    tables = list(dict.fromkeys(model._meta.db_table for model in models))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname, s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = ANY(%s)",
            [tables],
        )
        stale = [
            name
            for name, changed, rows in cursor.fetchall()
            if changed >= STALE_MIN_CHANGES and changed > STALE_SHARE * max(float(rows), 0.0)
        ]
        for table in stale:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return stale
