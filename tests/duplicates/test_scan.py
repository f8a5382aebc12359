"""scan_duplicates: pairs written in bounded batches, and each pair counted once however it is chunked."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from duplicates.models import DetectionCheck, DuplicatePair
from duplicates.services import detection
from tests.duplicates.conftest import group_files

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


def test_a_scan_counts_each_pair_once_across_chunks(ingest, monkeypatch):
    labels = ingest({"g02": group_files("g02", 4), "g05": group_files("g05", 3)})
    stored = DuplicatePair.objects.filter(kind="near_duplicate").count()
    assert stored == 6 + 3
    monkeypatch.setattr(detection, "DETECT_CHUNK", 2)  # most pairs span two chunks: found from both sides

    out = StringIO()
    call_command("scan_duplicates", "--no-verify", stdout=out, stderr=StringIO())

    total = DuplicatePair.objects.count()
    assert f"Scanned {len(labels)} images" in out.getvalue()
    assert f"{total:,} pairs found, 0 new" in out.getvalue()
    assert f"{total:,} updated" in out.getvalue()


def test_a_scan_writes_pairs_in_bounded_batches(ingest, monkeypatch):
    ingest({"g02": group_files("g02", 4)})
    pairs = DuplicatePair.objects.count()
    assert pairs >= 6
    monkeypatch.setattr(detection, "PAIR_WRITE_BATCH", 2)

    with CaptureQueriesContext(connection) as captured:
        call_command("scan_duplicates", "--no-verify", stdout=StringIO(), stderr=StringIO())

    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('UPDATE "duplicates_duplicatepair"')]
    assert len(updates) == -(-pairs // 2)  # one statement per two pairs, never one for them all
    assert all(sql.count("WHEN") <= 2 * 6 for sql in updates)  # two rows x six fields at most
    assert DetectionCheck.objects.count() == 4  # a scan also records the checks
