"""Detection keeps the planner statistics of the tables it fills fresh, where autovacuum is off or behind."""

from __future__ import annotations

import time

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from core.planner_statistics import STALE_MIN_CHANGES, planner_statistics_refresh_if_stale

pytestmark = pytest.mark.django_db(transaction=True)


def _changed_since_analyze(table: str) -> int:
    """Committed changes the statistics system has counted (a backend reports them when idle, at most once
    a second: wait for the count, as ANALYZE's own scheduling would)."""
    deadline = time.monotonic() + 5
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = %s", [table])
            changed = cursor.fetchone()[0]
            if changed >= STALE_MIN_CHANGES or time.monotonic() > deadline:
                return changed
            time.sleep(0.2)


def test_a_table_filled_since_its_last_analyze_is_analysed_once():
    if connection.vendor != "postgresql":
        assert planner_statistics_refresh_if_stale(models=[Session]) == []  # SQLite keeps its own estimates
        return
    expires = timezone.now() + timezone.timedelta(days=1)
    Session.objects.bulk_create(
        Session(session_key=f"k{n:039d}", session_data="x", expire_date=expires) for n in range(STALE_MIN_CHANGES + 200)
    )
    assert _changed_since_analyze("django_session") >= STALE_MIN_CHANGES
    assert planner_statistics_refresh_if_stale(models=[Session]) == ["django_session"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'django_session'::regclass")
        assert cursor.fetchone()[0] == STALE_MIN_CHANGES + 200
    assert planner_statistics_refresh_if_stale(models=[Session]) == []  # fresh now: one catalogue read
