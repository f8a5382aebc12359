"""Detection: finding and storing the pairs of embedded images, driven by a durable to-do list.

Detection is its own step. An image is "checked" once a DetectionCheck row with the settings in force is
committed together with the pairs the check found; images without one are found by
selectors.detection.images_awaiting_detection and checked by the next detection run (queued after every
embedding batch, and by a schedule every two minutes), so a worker killed at any moment leaves nothing
unchecked.

A run works in short steps and stops after a short budget: each step claims as many images as this process
checks in IMGSIM_DETECT_STEP_SECONDS (measured: an image with a hundred look-alikes costs far more than one
without), under a lease renewed while the step makes progress; a run that used its IMGSIM_DETECT_RUN_SECONDS
queues the next one behind whatever was queued meanwhile (an embedding run, an index rebuild), so no task
waits long behind detection, and a dead worker's images are taken over soon after its lease ends.

Detection never touches a human decision: a re-detection updates a pair's similarity, band and evidence but
not its review status, and a pair that is new (a re-upload of a file that was reviewed before) takes the
last decision about the same two files (by sha256) instead of coming back as pending.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone
from django_q.models import Schedule

from core.planner_statistics import planner_statistics_refresh_if_stale
from core.task_queue import task_queue_after_commit, task_queue_once_after_commit
from duplicates import geometry, scene_match
from duplicates.candidate_pairs import (
    Bands,
    NeighbourSearch,
    band_of,
    canonical_pairs,
    needs_verification,
    neighbours_above,
)
from duplicates.evidence import pair_evidence
from duplicates.features import Verifier, fingerprint_distance, image_fingerprint, similar_scene_evidence
from duplicates.models import (
    DetectionCheck,
    DetectionClaim,
    DuplicateDecision,
    DuplicateGroup,
    DuplicateGroupMember,
    DuplicatePair,
    sha_pair_key,
)
from duplicates.selectors.detection import (
    detection_settings_key,
    geometric_verification_enabled,
    images_awaiting_detection,
    library_neighbour_search,
    verification_threads,
)
from duplicates.selectors.pairs import image_facts
from duplicates.selectors.thresholds import duplicate_bands
from duplicates.services.groups import duplicate_groups_rebuild, duplicate_groups_refresh, groups_lock
from duplicates.services.pair_review import duplicate_decision_log
from gallery.models import Image
from search.models import IndexBuild
from search.selectors import index_status
from search.services.index_lifecycle import RebuildAlreadyRunningError, index_rebuild
from search.stored_vectors import IDS_PER_QUERY, stored_vectors

logger = logging.getLogger(__name__)

# Images queried per round trip when detecting for many images: bounds memory, batches the index; also the
# largest step of a detection run, however quick its images.
DETECT_CHUNK = 256
# The first step of a worker process, before it has timed one.
FIRST_STEP = 4
# Rows per UPDATE / INSERT when storing pairs: one statement per few hundred rows plans quickly on PostgreSQL,
# where one bulk_update of every pair (a CASE branch per row and field) spends its time in JIT compilation
# (bench/scan.py; figures in bench/README.md).
PAIR_WRITE_BATCH = 250
# Group members checked against their group's kept copy per detection chunk (_check_against_kept): bounds
# the geometric work a chunk adds; later chunks touching the group check the rest.
KEPT_CHECKS = 200
DETECT_TASK = "duplicates.tasks.detect_pending"
# The tables detection fills and reads back in every step: their planner statistics are kept fresh by the run.
PLANNED_TABLES = (Image, DuplicatePair, DuplicateGroup, DuplicateGroupMember, DetectionCheck)
SCAN_TASK = "duplicates.tasks.scan_library"
TAKE_OVER_SCHEDULE = "imgsim: take over detection claims"
# Times steps, budgets and leases (replaced in tests).
clock: Callable[[], float] = time.monotonic
# After a lease ends, the scheduler (which looks every 15 s) queues the run that takes its images over.
TAKE_OVER_MARGIN = timedelta(seconds=1)


@dataclass
class DetectSummary:
    queried: int = 0
    pairs: int = 0
    created: int = 0
    updated: int = 0
    remembered: int = 0
    verified: int = 0

    def add(self, other: DetectSummary) -> None:
        for name in ("queried", "pairs", "created", "updated", "remembered", "verified"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Run:
    """What one detection run keeps across its chunks."""

    model_name: str
    bands: Bands
    settings_key: str
    search: NeighbourSearch
    verifier: Verifier
    since: datetime | None = None  # pairs detected at or after this were already written by this run
    keep_claim: Callable[[], None] = lambda: None  # called as the step makes progress (renews its lease)
    fixed_seconds: float = 0.0  # spent refreshing groups: a cost per step, not per image


def _run(*, verify: bool | None, since: datetime | None = None, keep_claim: Callable[[], None] | None = None) -> _Run:
    model_name = settings.IMGSIM_MODEL
    return _Run(
        model_name=model_name,
        bands=duplicate_bands(model_name=model_name),
        settings_key=detection_settings_key(model_name=model_name),
        search=library_neighbour_search(model_name=model_name),
        verifier=Verifier(
            enabled=geometric_verification_enabled() if verify is None else verify, threads=verification_threads()
        ),
        since=since,
        keep_claim=keep_claim or (lambda: None),
    )


def duplicate_pairs_detect(*, image_ids: Iterable[int], verify: bool | None = None) -> DetectSummary:
    """Find and store the near-duplicate and similar pairs of these images against the whole library."""
    run = _run(verify=verify)
    summary = DetectSummary()
    wanted = sorted(set(image_ids))
    for start in range(0, len(wanted), DETECT_CHUNK):
        summary.add(_detect_chunk(wanted[start : start + DETECT_CHUNK], run))
    summary.verified = run.verifier.checked
    return summary


@dataclass
class PendingDetectionSummary:
    detection: DetectSummary
    more_left: bool  # the time budget ran out with images still unchecked (a follow-up run is queued)
    failed: list[int] = field(default_factory=list)  # left unchecked after an error: the next run retries them
    steps: list[int] = field(default_factory=list)  # images claimed by each step, in order


@dataclass
class StepPace:
    """How many images a step claims: as many as this process checked in `target_seconds` lately.

    A step costs a fixed part (refreshing the groups around its images, whatever their number) and a part
    per image. The seconds per image follow a slower step at once and a quicker one by halves (an image with a
    hundred look-alikes costs a hundred times one without, and they come in runs); a step takes at least as
    many images as its fixed part is worth, so a slow refresh makes steps longer, not more numerous; a step
    is at most twice the last one, within 1..DETECT_CHUNK.
    """

    seconds_per_image: float | None = None
    fixed_seconds: float = 0.0
    last_size: int = FIRST_STEP

    def record(self, *, images: int, seconds: float, fixed_seconds: float = 0.0) -> None:
        if images <= 0:
            return
        measured = max(seconds - fixed_seconds, 0.0) / images
        previous = self.seconds_per_image
        self.seconds_per_image = measured if previous is None else max(measured, (previous + measured) / 2)
        self.fixed_seconds = fixed_seconds if previous is None else (self.fixed_seconds + fixed_seconds) / 2
        self.last_size = images

    def next_size(self, *, target_seconds: float) -> int:
        if self.seconds_per_image is None:
            return FIRST_STEP
        per_image = max(self.seconds_per_image, 1e-6)
        fits = max(target_seconds - self.fixed_seconds, self.fixed_seconds) / per_image
        return max(1, min(int(fits), 2 * self.last_size, DETECT_CHUNK))


# Per worker process: a run starts at the pace the previous runs measured.
step_pace = StepPace()


class ClaimLostError(Exception):
    """The step's lease ran out and another worker took its images over: it checks them, this step stops."""


class _Lease:
    """A step's claim, renewed once a third of the lease has passed while the step makes progress, so a step
    that outlasts its lease keeps its images while its worker lives."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.renewed = clock()

    def keep(self) -> None:
        seconds = settings.IMGSIM_DETECT_LEASE_SECONDS
        if clock() - self.renewed < seconds / 3:
            return
        until = timezone.now() + timedelta(seconds=seconds)
        if not DetectionClaim.objects.filter(token=self.token).update(claimed_until=until):
            raise ClaimLostError(self.token)
        self.renewed = clock()


def _claim_chunk(*, after: int, size: int) -> tuple[str, int, list[int]]:
    """Lease the next unchecked, unclaimed images after `after` to this run: (token, last id looked at, ids).

    A claim is a row inserted (the primary key lets one worker win each image) or an expired one taken over
    by a single UPDATE. Images checked meanwhile by the claim's previous holder are given back at once: it
    commits the check before it releases the claim, so a claim won here sees that check.
    """
    now = timezone.now()
    held = DetectionClaim.objects.filter(image_id=OuterRef("pk"), claimed_until__gte=now)
    pending = images_awaiting_detection().filter(id__gt=after).filter(~Exists(held)).order_by("id")
    ids = list(pending.values_list("id", flat=True)[:size])
    if not ids:
        return "", after, []
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=settings.IMGSIM_DETECT_LEASE_SECONDS)
    DetectionClaim.objects.filter(image_id__in=ids, claimed_until__lt=now).update(token=token, claimed_until=until)
    DetectionClaim.objects.bulk_create(
        [DetectionClaim(image_id=pk, token=token, claimed_until=until) for pk in ids],
        ignore_conflicts=True,
        batch_size=PAIR_WRITE_BATCH,
    )
    claimed = DetectionClaim.objects.filter(token=token).values_list("image_id", flat=True)
    mine = sorted(images_awaiting_detection().filter(id__in=claimed).values_list("id", flat=True))
    DetectionClaim.objects.filter(token=token).exclude(image_id__in=mine).delete()
    return token, ids[-1], mine


def _release_chunk(token: str) -> None:
    """Give the chunk's images back (checked, or failed for the next run to retry) rather than after the lease."""
    try:
        DetectionClaim.objects.filter(token=token).delete()
    except DatabaseError:
        logger.warning("could not release detection claims %s; they expire with their lease", token, exc_info=True)


def _detect_step(ids: list[int], lease: _Lease, summary: DetectSummary, failed: list[int]) -> _Run:
    """Check one claimed step's images (its run holds the pairs verified and the time spent refreshing
    groups). A step that fails is checked image by image, so one unreadable image cannot hold up the others."""
    # A fresh run per step: images embedded meanwhile are in its tail and found as neighbours.
    run = _run(verify=None, keep_claim=lease.keep)
    try:
        summary.add(_detect_chunk(ids, run))
    except ClaimLostError:
        raise
    except Exception:
        logger.exception("duplicate detection failed for %d images; checking them one by one", len(ids))
        for pk in ids:
            try:
                summary.add(_detect_chunk([pk], run))
            except ClaimLostError:
                raise
            except Exception:
                logger.exception("duplicate detection failed for image %s; the next run retries it", pk)
                failed.append(pk)
    return run


def duplicate_detection_run(*, time_budget_seconds: float | None = None) -> PendingDetectionSummary:
    """Check every embedded image that has no detection check under the settings in force, step by step
    (each step's pairs and checks commit together), until none is left or the time budget is spent
    (IMGSIM_DETECT_RUN_SECONDS unless given; the next run is then queued).

    Each step works only on the images it claimed (DetectionClaim), so workers running at once share the
    work instead of checking the same images; a killed worker's images are taken over once its lease ends
    (a run that finds images leased to another worker schedules one for then).
    """
    budget = settings.IMGSIM_DETECT_RUN_SECONDS if time_budget_seconds is None else time_budget_seconds
    started = clock()
    planner_statistics_refresh_if_stale(models=PLANNED_TABLES)  # the refresh's pair reads need fresh statistics
    summary = DetectSummary()
    failed: list[int] = []
    steps: list[int] = []
    verified = after = 0
    while True:
        token, after, ids = _claim_chunk(after=after, size=step_pace.next_size(target_seconds=_step_seconds()))
        if not token:
            break
        if not ids:
            continue  # all claimed by another worker: on to the next images
        steps.append(len(ids))
        step_started = clock()
        fixed = 0.0
        try:
            run = _detect_step(ids, _Lease(token), summary, failed)
            verified += run.verifier.checked
            fixed = run.fixed_seconds
        except ClaimLostError:
            logger.warning("detection claims %s ran out and were taken over; that worker checks them", token)
        finally:
            _release_chunk(token)
        step_pace.record(images=len(ids), seconds=clock() - step_started, fixed_seconds=fixed)
        if clock() - started > budget:
            break
    summary.verified = verified
    more = after > 0 and images_awaiting_detection().filter(id__gt=after).exists()
    if more:
        duplicate_detection_schedule()
    _take_over_schedule()
    if summary.queried or failed:
        logger.info("duplicate detection: %s, %d failed, steps %s", summary, len(failed), steps)
    return PendingDetectionSummary(detection=summary, more_left=more, failed=failed, steps=steps)


def _step_seconds() -> float:
    return float(settings.IMGSIM_DETECT_STEP_SECONDS)


def _take_over_schedule() -> None:
    """Images still unchecked under another worker's lease: a run is scheduled for when the earliest lease
    ends, so a dead worker's images wait no longer than that (a living worker renews its lease and releases
    the images once checked; the run then finds nothing to take over)."""
    try:
        ends = DetectionClaim.objects.filter(image__in=images_awaiting_detection()).aggregate(
            first=Min("claimed_until")
        )["first"]
        if ends is None:
            return
        Schedule.objects.update_or_create(
            name=TAKE_OVER_SCHEDULE,
            defaults={
                "func": DETECT_TASK,
                "schedule_type": Schedule.ONCE,
                "repeats": -1,
                "next_run": max(ends, timezone.now()) + TAKE_OVER_MARGIN,
            },
        )
    except DatabaseError:
        logger.warning("could not schedule the take-over of detection claims; the schedule runs it", exc_info=True)


def duplicate_detection_schedule() -> None:
    """Queue a detection run (after the current transaction commits) unless one is waiting already: it checks
    whatever is unchecked when it starts."""
    task_queue_once_after_commit(DETECT_TASK, task_name="detect duplicates")


def _detect_chunk(ids: list[int], run: _Run) -> DetectSummary:
    query_ids, query_vectors, _ = stored_vectors(model_name=run.model_name, ids=ids)
    if not query_ids.shape[0]:
        return DetectSummary()
    queried = query_ids.tolist()
    summary = DetectSummary(queried=len(queried))
    neighbours = neighbours_above(
        query_ids=query_ids, query_vectors=query_vectors, search=run.search, floor=run.bands.similar
    )
    run.keep_claim()
    found = canonical_pairs(query_ids, neighbours)
    images = Image.objects.defer("embedding").in_bulk({pk for key in found for pk in key}) if found else {}
    found = {key: sim for key, sim in found.items() if key[0] in images and key[1] in images}
    existing = {
        (pair.image_a_id, pair.image_b_id): pair
        for pair in DuplicatePair.objects.filter(Q(image_a_id__in=queried) | Q(image_b_id__in=queried))
        if (pair.image_a_id, pair.image_b_id) in found
    }
    # A scan (run.since) rewrites every pair it finds: the pairs it does not write are pruned.
    stored = (
        _stored_by_partners(existing, queried=set(queried), settings_key=run.settings_key)
        if run.since is None
        else set()
    )
    to_write: list[tuple[tuple[int, int], float, DuplicatePair | None]] = []
    for key, similarity in found.items():
        pair = existing.get(key)
        if pair is not None and run.since is not None and pair.detected_at and pair.detected_at >= run.since:
            continue  # found from its other image earlier in this run: written and counted once
        if key in stored:
            continue  # written by its other image's check under these settings: nothing new to write
        to_write.append((key, similarity, pair))
    unverified = [
        key
        for key, similarity, pair in to_write
        if needs_verification(similarity, bands=run.bands) and _verified_before(pair) is None
    ]
    counted = run.verifier.inliers_of(
        [(images[a_id], images[b_id]) for a_id, b_id in unverified], progress=run.keep_claim
    )
    verified = dict(zip(unverified, counted, strict=True))
    now = timezone.now()
    to_update: list[DuplicatePair] = []
    to_create: list[DuplicatePair] = []
    for (a_id, b_id), similarity, pair in to_write:
        run.keep_claim()
        image_a, image_b = images[a_id], images[b_id]
        inliers = None
        if needs_verification(similarity, bands=run.bands):
            previous = _verified_before(pair)
            inliers = previous if previous is not None else verified[(a_id, b_id)]
        kind = band_of(similarity, bands=run.bands, inliers=inliers, min_inliers=geometry.MIN_INLIERS)
        if kind is None:
            continue
        facts_a, facts_b = image_facts(image_a), image_facts(image_b)
        kind = scene_match.band_of_shots(kind, facts_a, facts_b)  # a burst or a bracket is not a copy
        first, second = image_fingerprint(image_a), image_fingerprint(image_b)
        evidence = pair_evidence(
            cosine=similarity,
            a=facts_a,
            b=facts_b,
            phash_distance=fingerprint_distance(first, second, 0),
            dhash_distance=fingerprint_distance(first, second, 1),
            geometric_inliers=inliers,
        )
        if inliers is not None:
            evidence["geometric_check"] = geometry.CHECK
        if kind == DuplicatePair.Kind.SIMILAR:  # grouped only when one scene (duplicates/scene_match.py)
            evidence.update(similar_scene_evidence(image_a, image_b, a=facts_a, b=facts_b, inliers=inliers))
        if pair is not None:
            pair.similarity, pair.kind, pair.embedding_model = similarity, kind, run.model_name
            pair.evidence = {**evidence, **_kept_notes(pair.evidence)}
            pair.detected_at = pair.updated_at = now
            to_update.append(pair)
        else:
            to_create.append(
                DuplicatePair(
                    image_a=image_a,
                    image_b=image_b,
                    similarity=similarity,
                    kind=kind,
                    evidence=evidence,
                    embedding_model=run.model_name,
                    detected_at=now,
                )
            )
    summary.pairs = len(to_update) + len(to_create)
    with transaction.atomic():
        if summary.pairs:
            groups_lock()  # first: the pairs written here and the groups refreshed from them commit together
        if to_update:
            DuplicatePair.objects.bulk_update(
                to_update,
                ["similarity", "kind", "evidence", "embedding_model", "detected_at", "updated_at"],
                batch_size=PAIR_WRITE_BATCH,
            )
        summary.updated = len(to_update)
        remembered = _remembered_decisions(to_create)
        fresh = [pair for pair in to_create if _key(pair) not in remembered]
        DuplicatePair.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=PAIR_WRITE_BATCH)
        summary.created = len(fresh)
        for pair in to_create:
            decision = remembered.get(_key(pair))
            if decision is not None and _create_remembered(pair, decision):
                summary.remembered += 1
                summary.created += 1
        if summary.pairs:  # the groups follow the pairs, committed with them
            refresh_started = clock()
            duplicate_groups_refresh(image_ids=queried)
            run.fixed_seconds += clock() - refresh_started
        _mark_checked(queried, settings_key=run.settings_key, at=now)
    if summary.pairs:
        summary.created += _check_against_kept(queried, run)
    return summary


def _kept_check_key(key: tuple[int, int]) -> str:
    return f"duplicates:kept-check:{geometry.CHECK}:{key[0]}:{key[1]}"


def _check_against_kept(ids: list[int], run: _Run) -> int:
    """Check the members of the pending near-duplicate groups around these images that have no pair with their
    group's kept copy against it, geometrically and whatever their cosine, and store each match as their
    near-duplicate pair: the suggestion trashes only members verified against the kept copy, and a copy that
    joined through other members is often a strong edit whose cosine fell below the similar floor. Checks
    that fail are remembered in the cache (forgetting one costs one more check); at most KEPT_CHECKS a
    chunk. Returns the pairs stored."""
    if not run.verifier.enabled:
        return 0
    keeps = dict(
        DuplicateGroup.objects.filter(
            kind=DuplicatePair.Kind.NEAR_DUPLICATE,
            status=DuplicateGroup.Status.PENDING,
            suggested_keep__isnull=False,
            members__image_id__in=ids,
        )
        .values_list("id", "suggested_keep_id")
        .distinct()
    )
    members = DuplicateGroupMember.objects.filter(group_id__in=list(keeps)).values_list("group_id", "image_id")
    wanted = {(min(keeps[g], m), max(keeps[g], m)) for g, m in members if m != keeps[g]}
    if not wanted:
        return 0
    kept, others = set(keeps.values()), {x for key in wanted for x in key}
    known = set(
        DuplicatePair.objects.filter(image_a_id__in=others, image_b_id__in=others)
        .filter(Q(image_a_id__in=kept) | Q(image_b_id__in=kept))
        .values_list("image_a_id", "image_b_id")
    )
    todo = [key for key in sorted(wanted - known) if cache.get(_kept_check_key(key)) is None][:KEPT_CHECKS]
    images = Image.objects.defer("embedding").in_bulk({x for key in todo for x in key})
    vector_ids, vectors, _ = stored_vectors(model_name=run.model_name, ids=sorted(images))
    row = {pk: position for position, pk in enumerate(vector_ids.tolist())}
    now = timezone.now()
    found: list[DuplicatePair] = []
    for key in todo:
        a, b = key
        if a not in row or b not in row:
            continue
        inliers = run.verifier.inliers(images[a], images[b])
        if inliers is None or inliers < geometry.MIN_INLIERS:
            cache.set(_kept_check_key(key), inliers or 0, None)
            continue
        similarity = float(vectors[row[a]] @ vectors[row[b]])
        first, second = image_fingerprint(images[a]), image_fingerprint(images[b])
        evidence = pair_evidence(
            cosine=similarity,
            a=image_facts(images[a]),
            b=image_facts(images[b]),
            phash_distance=fingerprint_distance(first, second, 0),
            dhash_distance=fingerprint_distance(first, second, 1),
            geometric_inliers=inliers,
        )
        evidence.update(geometric_check=geometry.CHECK, checked_against_kept=True)
        found.append(
            DuplicatePair(
                image_a=images[a],
                image_b=images[b],
                similarity=similarity,
                kind=DuplicatePair.Kind.NEAR_DUPLICATE,
                evidence=evidence,
                embedding_model=run.model_name,
                detected_at=now,
            )
        )
    remembered = _remembered_decisions(found)
    fresh = [pair for pair in found if _key(pair) not in remembered]  # a dismissed pair stays dismissed
    if not fresh:
        return 0
    with transaction.atomic():
        groups_lock()
        created = DuplicatePair.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=PAIR_WRITE_BATCH)
        duplicate_groups_refresh(image_ids={x for pair in fresh for x in (pair.image_a_id, pair.image_b_id)})
    return len(created)


def _stored_by_partners(
    existing: dict[tuple[int, int], DuplicatePair], *, queried: set[int], settings_key: str
) -> set[tuple[int, int]]:
    """Stored pairs written by the check of their other image (not queried here) under these settings: the
    cosine is exact, the bands and the inlier count the same, so writing them again changes nothing. In a
    photo with a hundred copies, an image checked in one step finds its look-alikes of the steps before:
    rewriting those pairs (and their evidence) would double the writes."""
    partners = {pk for key in existing for pk in key if pk not in queried}
    if not partners:
        return set()
    checked: dict[int, datetime] = {}
    ordered = sorted(partners)
    for start in range(0, len(ordered), IDS_PER_QUERY):
        checks = DetectionCheck.objects.filter(image_id__in=ordered[start : start + IDS_PER_QUERY])
        checked.update(checks.filter(settings_key=settings_key).values_list("image_id", "checked_at"))
    return {
        key
        for key, pair in existing.items()
        if pair.detected_at is not None
        and any(pk in checked and checked[pk] <= pair.detected_at for pk in key if pk not in queried)
    }


def _mark_checked(ids: list[int], *, settings_key: str, at: datetime) -> None:
    """The durable record, in the transaction of the pairs: these images are checked under these settings."""
    DetectionCheck.objects.bulk_create(
        [DetectionCheck(image_id=pk, settings_key=settings_key, checked_at=at) for pk in ids],
        update_conflicts=True,
        unique_fields=["image"],
        update_fields=["settings_key", "checked_at"],
        batch_size=PAIR_WRITE_BATCH,
    )


def _verified_before(pair: DuplicatePair | None) -> int | None:
    """The pair's stored inlier count when the current check made it (stored files never change, so it still
    holds); a count made by another check (geometry.CHECK differs) is redone."""
    if pair is None or pair.evidence.get("geometric_check") != geometry.CHECK:
        return None
    inliers = pair.evidence.get("geometric_inliers")
    return None if inliers is None else int(inliers)


def _kept_notes(evidence: dict) -> dict:
    """Notes that belong to the pair's history rather than to one detection run."""
    return {key: evidence[key] for key in ("remembered_from",) if key in evidence}


def _key(pair: DuplicatePair) -> str:
    return sha_pair_key(pair.image_a.sha256, pair.image_b.sha256)


def _remembered_decisions(pairs: list[DuplicatePair]) -> dict[str, DuplicateDecision]:
    """The latest standing decision about each pair's two files, found by content (sha256), not by id."""
    keys = {_key(pair) for pair in pairs}
    if not keys:
        return {}
    latest: dict[str, DuplicateDecision] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start : start + IDS_PER_QUERY]
        for decision in DuplicateDecision.objects.active().filter(sha_pair__in=chunk).order_by("-at", "-id"):
            latest.setdefault(decision.sha_pair, decision)
    return latest


def _create_remembered(pair: DuplicatePair, decision: DuplicateDecision) -> bool:
    """A re-uploaded file meets a decision made about its earlier copy: apply it again, and log that."""
    pair.review_status = decision.new_status
    pair.reviewed_by_id = decision.user_id
    pair.reviewed_at = decision.at
    pair.evidence = {**pair.evidence, "remembered_from": decision.pk}
    try:
        with transaction.atomic():
            pair.save()
    except IntegrityError:  # found by a concurrent detection a moment ago
        return False
    action = (
        DuplicateDecision.Action.NOT_DUPLICATE
        if decision.new_status == DuplicatePair.ReviewStatus.NOT_DUPLICATE
        else DuplicateDecision.Action.CONFIRM
    )
    duplicate_decision_log(
        pair=pair, action=action, previous=DuplicatePair.ReviewStatus.PENDING, user=None, source="remembered"
    )
    return True


# --- the whole library -----------------------------------------------------------------------------------


@dataclass
class ScanSummary:
    images: int
    detection: DetectSummary
    pruned: int
    index_version: int | None
    started_at: datetime


def duplicates_scan(
    *,
    progress: Callable[[int, int], None] | None = None,
    rebuild_index: bool = True,
    prune: bool = True,
    verify: bool | None = None,
) -> ScanSummary:
    """Re-detect pairs for every searchable image (after a model or threshold change): k-NN per image
    against a freshly built index, so the whole scan costs ~N log N.

    Each pair is written and counted once, however many of its images the scan queries. Pending pairs the
    scan no longer finds are removed; reviewed pairs stay, whatever the scan finds.
    """
    started = timezone.now()
    model_name = settings.IMGSIM_MODEL
    status = index_status()
    if rebuild_index and status["searchable"] and (status["pending"] or status["version"] is None):
        try:
            index_rebuild(requested_by="scan_duplicates")
        except RebuildAlreadyRunningError:
            logger.warning("an index rebuild is running; scanning with the served index and its exact tail")
    ids = list(Image.objects.searchable(model_name=model_name).order_by("id").values_list("id", flat=True))
    run = _run(verify=verify, since=started)
    detection = DetectSummary()
    if progress is not None:
        progress(0, len(ids))
    for start in range(0, len(ids), DETECT_CHUNK):
        detection.add(_detect_chunk(ids[start : start + DETECT_CHUNK], run))
        if progress is not None:
            progress(min(start + DETECT_CHUNK, len(ids)), len(ids))
    detection.verified = run.verifier.checked
    pruned = 0
    if prune:
        # A member's pair with its kept copy (_check_against_kept) is a geometric match below the k-NN floor:
        # the scan does not find it, and the files have not changed.
        stale = DuplicatePair.objects.pending().exclude(detected_at__gte=started)
        stale = stale.exclude(evidence__has_key="checked_against_kept")
        pruned, _ = stale.delete()
    duplicate_groups_rebuild()
    build = IndexBuild.objects.latest_ready(model_name=model_name)
    return ScanSummary(
        images=len(ids),
        detection=detection,
        pruned=pruned,
        index_version=build.pk if build else None,
        started_at=started,
    )


def duplicates_scan_schedule(*, requested_by: str = "") -> None:
    """Queue a full re-scan in the background (after a model or threshold change)."""
    task_queue_after_commit(SCAN_TASK, requested_by, task_name="re-scan duplicates")
