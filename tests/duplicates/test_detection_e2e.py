"""Detection end to end with real photos and the offline ImageNet backbone: upload -> embed -> pairs.

Pairs within a dev group are found as near-duplicates, pairs across groups and with distractors never are
(at the calibrated mobilenet_v2 thresholds); a re-scan keeps every human decision; a re-uploaded file gets
the decision made about its earlier copy back. Crash safety: tests/pipeline/test_crash_safe_detection.py.
"""

from __future__ import annotations

import itertools
from io import StringIO

import pytest
from django.core.management import call_command

from duplicates.models import DuplicateDecision, DuplicatePair
from duplicates.selectors.thresholds import duplicate_bands
from duplicates.services.detection import duplicate_pairs_detect
from duplicates.services.pair_review import duplicate_pair_resolve
from gallery.models import Image
from gallery.services import image_delete
from pipeline.services import image_ingest
from tests.duplicates.conftest import distractor_files, group_files

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


def pair_kinds() -> dict[tuple[int, int], str]:
    return {(pair.image_a_id, pair.image_b_id): pair.kind for pair in DuplicatePair.objects.all()}


def test_pairs_within_a_group_are_near_duplicates_and_nothing_else_is(ingest):
    labels = ingest({group: group_files(group, 6) for group in ("g00", "g02", "g05")} | {"d": distractor_files(20)})
    kinds = pair_kinds()
    within = {
        (a, b) for a, b in itertools.combinations(sorted(labels), 2) if labels[a] == labels[b] and labels[a] != "d"
    }
    near = {key for key, kind in kinds.items() if kind == DuplicatePair.Kind.NEAR_DUPLICATE}
    assert near == within  # 45 pairs: every variant of each photo with every other, and nothing more
    # Look-alike distractors may share the similar band, shown apart; never with a variant of a dev photo.
    similar = {key for key, kind in kinds.items() if kind == DuplicatePair.Kind.SIMILAR}
    assert all(labels[a] == labels[b] == "d" for a, b in similar)
    assert all(a < b for a, b in kinds)

    pair = DuplicatePair.objects.filter(kind="near_duplicate").order_by("similarity").first()
    evidence = pair.evidence
    assert evidence["cosine"] == pytest.approx(pair.similarity, abs=1e-5)
    assert 0 <= evidence["phash_distance"] <= 64
    assert {evidence["a"]["id"], evidence["b"]["id"]} == {pair.image_a_id, pair.image_b_id}
    assert evidence["a"]["width"] == pair.image_a.width
    assert evidence["b"]["file_size"] == pair.image_b.file_size
    assert evidence["a"]["sharpness"] == pytest.approx(pair.image_a.quality_scores["sharpness"], abs=1e-4)
    assert pair.embedding_model == "mobilenet_v2"
    assert pair.review_status == DuplicatePair.ReviewStatus.PENDING


def test_grey_zone_pairs_are_verified_geometrically(ingest, settings):
    """A heavy crop scores below the near-duplicate threshold; matching local features make it one."""
    labels = ingest({"g00": group_files("g00", 6)})
    near = duplicate_bands().near_duplicate
    verified = [pair for pair in DuplicatePair.objects.all() if pair.similarity < near]
    assert verified, "the first g00 variants include crops that score in the grey zone"
    assert all(pair.kind == "near_duplicate" and pair.evidence["geometric_inliers"] >= 20 for pair in verified)
    settings.IMGSIM_DUPLICATE_GEOMETRY = False
    DuplicatePair.objects.all().delete()
    duplicate_pairs_detect(image_ids=list(labels))
    assert {pair.kind for pair in DuplicatePair.objects.filter(similarity__lt=near)} == {"similar"}


@pytest.fixture
def reviewed_library(ingest, staff):
    """Four variants of one photo (6 near-duplicate pairs) and six unrelated photos; one pair dismissed by a
    reviewer, one confirmed. Returns (labels, dismissed, confirmed)."""
    labels = ingest({"g02": group_files("g02", 4), "d": distractor_files(6)})
    pairs = list(DuplicatePair.objects.filter(kind="near_duplicate").order_by("id"))
    assert len(pairs) == 6
    dismissed, confirmed = pairs[0], pairs[1]
    duplicate_pair_resolve(pair=dismissed, action="not_duplicate", user=staff, source="test")
    duplicate_pair_resolve(pair=confirmed, action="confirm", user=staff, source="test")
    return labels, dismissed, confirmed


def test_rescan_keeps_every_human_decision(reviewed_library):
    # given a library with a dismissed and a confirmed pair
    _, dismissed, confirmed = reviewed_library
    pending_before = set(DuplicatePair.objects.filter(review_status="pending").values_list("pk", flat=True))
    # when the whole library is scanned again
    out, progress = StringIO(), StringIO()
    call_command("scan_duplicates", stdout=out, stderr=progress)
    # then it reports every image, and both decisions and the pending pairs are still there as they were
    assert "Scanned 10 images" in out.getvalue()
    assert "10/10 images 100.0%" in progress.getvalue()
    statuses = dict(DuplicatePair.objects.values_list("pk", "review_status"))
    assert statuses[dismissed.pk] == "not_duplicate"
    assert statuses[confirmed.pk] == "confirmed"
    assert pending_before <= {pk for pk, status in statuses.items() if status == "pending"}


def test_stricter_threshold_drops_pending_pairs_and_keeps_reviewed_ones(reviewed_library, settings):
    # given a library with a dismissed, a confirmed and four pending near-duplicate pairs
    _, dismissed, confirmed = reviewed_library
    assert DuplicatePair.objects.filter(review_status="pending").count() >= 4
    # when the thresholds are raised so that no pair qualifies any more, and the library is re-scanned
    settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD = 0.999
    settings.IMGSIM_SIMILAR_THRESHOLD = 0.999
    call_command("scan_duplicates", "--no-verify", stdout=StringIO(), stderr=StringIO())
    # then the pending pairs are gone and the reviewed ones stay as they are
    assert set(DuplicatePair.objects.values_list("pk", flat=True)) == {dismissed.pk, confirmed.pk}
    assert DuplicatePair.objects.get(pk=dismissed.pk).review_status == "not_duplicate"
    assert DuplicatePair.objects.get(pk=confirmed.pk).review_status == "confirmed"


def test_reuploaded_file_gets_the_decision_about_its_earlier_copy_back(reviewed_library, staff, committed):
    # given a dismissed pair whose second image is deleted (the decision is logged without its pair)
    labels, dismissed, _ = reviewed_library
    victim = Image.objects.get(pk=dismissed.image_b_id)
    victim_id, data, name = victim.pk, victim.file.read(), victim.original_name
    victim.file.close()
    image_delete(image=victim)
    assert not DuplicatePair.objects.filter(pk=dismissed.pk).exists()
    assert DuplicateDecision.objects.filter(image_b_id=victim_id, action="not_duplicate", pair=None).exists()
    # when the same file is uploaded again and embedded
    again = committed(image_ingest, data=data, original_name=name).image  # embedded, then detected
    # then its pair with the same partner comes back dismissed, by the same reviewer, and the log says why
    back = DuplicatePair.objects.get(image_a_id=dismissed.image_a_id, image_b_id=again.pk)
    assert back.review_status == "not_duplicate"
    assert back.reviewed_by == staff
    assert back.evidence["remembered_from"] == DuplicateDecision.objects.get(pair=None, action="not_duplicate").pk
    remembered = DuplicateDecision.objects.get(pair=back)
    assert (remembered.source, remembered.previous_status, remembered.new_status) == (
        "remembered",
        "pending",
        "not_duplicate",
    )
    assert Image.objects.filter(pk__in=set(labels) - {victim_id}).count() == len(labels) - 1
