"""Writes of the duplicates app: detecting pairs, resolving them, undoing decisions, re-scanning the library.

Detection never touches a human decision: a rescan updates a pair's similarity, band and evidence but not
its review status, and a pair that is new (a re-upload of a file that was reviewed before) takes the last
decision about the same two files (by sha256) instead of coming back as pending.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image as PILImage

from core.errors import ServiceError
from duplicates import geometry
from duplicates.detection import (
    Bands,
    NeighbourSearch,
    band_of,
    canonical_pairs,
    needs_verification,
    neighbours_above,
)
from duplicates.evidence import ImageFacts, dhash, hamming, pair_evidence, phash, suggest_keep, upright
from duplicates.models import CalibrationRun, DuplicateDecision, DuplicatePair, sha_pair_key
from gallery.models import Image
from search.selectors import IDS_PER_QUERY, LibrarySearch, stored_vectors
from search.thresholds import thresholds_for

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser | None
# Images queried per round trip when detecting for many images (a scan): bounds memory, batches the index.
DETECT_CHUNK = 256


def duplicate_bands(*, model_name: str | None = None) -> Bands:
    """The near-duplicate and similar thresholds in force for the configured backbone."""
    thresholds = thresholds_for(model_name or settings.IMGSIM_MODEL)
    return Bands(near_duplicate=thresholds.near_duplicate, similar=thresholds.similar)


def geometric_verification_enabled() -> bool:
    """On by default: bench/duplicates.py measured it raising recall at the same precision."""
    return settings.IMGSIM_DUPLICATE_GEOMETRY


# --- candidate search ------------------------------------------------------------------------------------


def library_neighbour_search(*, model_name: str) -> NeighbourSearch:
    """Purely visual k-NN over the library (served index + tail, exact cosine); the tail is read once."""
    library = LibrarySearch(model_name=model_name)
    return lambda queries, k: library.search(queries, k=k)


# --- per-image evidence ----------------------------------------------------------------------------------

_FINGERPRINT_CACHE_SIZE = 8192
_fingerprints: OrderedDict[str, tuple[int, int] | None] = OrderedDict()
_fingerprints_lock = threading.Lock()


def _open_picture(image: Image) -> PILImage.Image:
    """The thumbnail when there is one (small, upright), else the original at reduced scale."""
    field_file = image.thumbnail if image.thumbnail else image.file
    with field_file.open("rb") as handle:
        picture = PILImage.open(handle)
        picture.draft("RGB", (256, 256))
        picture.load()
    return picture if image.thumbnail else upright(picture)


def image_fingerprint(image: Image) -> tuple[int, int] | None:
    """(pHash, dHash) of an image, cached per process by content (sha256); None if its files are unreadable."""
    with _fingerprints_lock:
        if image.sha256 in _fingerprints:
            _fingerprints.move_to_end(image.sha256)
            return _fingerprints[image.sha256]
    try:
        picture = _open_picture(image)
        value: tuple[int, int] | None = (phash(picture), dhash(picture))
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no perceptual hash for image %s: %s", image.pk, error)
        value = None
    with _fingerprints_lock:
        _fingerprints[image.sha256] = value
        while len(_fingerprints) > _FINGERPRINT_CACHE_SIZE:
            _fingerprints.popitem(last=False)
    return value


def image_facts(image: Image) -> ImageFacts:
    return ImageFacts(
        id=image.pk,
        width=image.width,
        height=image.height,
        file_size=image.file_size,
        sharpness=(image.quality_scores or {}).get("sharpness"),
        rating=image.rating,
        taken_at=image.taken_at,
        camera=f"{image.camera_make} {image.camera_model}".strip(),
    )


def _local_features(image: Image) -> geometry.LocalFeatures | None:
    try:
        with image.file.open("rb") as handle:
            return geometry.local_features(geometry.load_for_matching(handle))
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no local features for image %s: %s", image.pk, error)
        return None


class _Verifier:
    """Geometric verification for one detection run; each image's features are kept for the next pairs
    (the most recent FEATURE_CACHE images: a scan of a large library must not keep them all)."""

    FEATURE_CACHE = 512

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.features: OrderedDict[int, geometry.LocalFeatures | None] = OrderedDict()
        self.checked = 0

    def _features(self, image: Image) -> geometry.LocalFeatures | None:
        if image.pk in self.features:
            self.features.move_to_end(image.pk)
            return self.features[image.pk]
        features = _local_features(image)
        self.features[image.pk] = features
        while len(self.features) > self.FEATURE_CACHE:
            self.features.popitem(last=False)
        return features

    def inliers(self, first: Image, second: Image) -> int | None:
        if not self.enabled:
            return None
        a, b = self._features(first), self._features(second)
        if a is None or b is None:
            return None
        self.checked += 1
        return geometry.count_inliers(a, b)


def _distance(first: tuple[int, int] | None, second: tuple[int, int] | None, which: int) -> int | None:
    if first is None or second is None:
        return None
    return hamming(first[which], second[which])


# --- detection -------------------------------------------------------------------------------------------


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


def duplicate_pairs_detect(*, image_ids: Iterable[int], verify: bool | None = None) -> DetectSummary:
    """Find and store the near-duplicate and similar pairs of these images against the whole library."""
    model_name = settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model_name)
    verifier = _Verifier(enabled=geometric_verification_enabled() if verify is None else verify)
    search = library_neighbour_search(model_name=model_name)
    summary = DetectSummary()
    wanted = sorted(set(image_ids))
    for start in range(0, len(wanted), DETECT_CHUNK):
        summary.add(_detect_chunk(wanted[start : start + DETECT_CHUNK], model_name, bands, search, verifier))
    summary.verified = verifier.checked
    return summary


def duplicate_pairs_detect_after_embedding(*, image_ids: list[int]) -> None:
    """Detection for freshly embedded images; a failure is logged and never fails the embedding."""
    if not image_ids:
        return
    try:
        summary = duplicate_pairs_detect(image_ids=image_ids)
    except Exception:
        logger.exception("duplicate detection failed for images %s; run manage.py scan_duplicates", image_ids[:20])
        return
    if summary.pairs:
        logger.info("duplicate detection: %s", summary)


def _detect_chunk(
    ids: list[int], model_name: str, bands: Bands, search: NeighbourSearch, verifier: _Verifier
) -> DetectSummary:
    query_ids, query_vectors, _ = stored_vectors(model_name=model_name, ids=ids)
    if not query_ids.shape[0]:
        return DetectSummary()
    neighbours = neighbours_above(query_ids=query_ids, query_vectors=query_vectors, search=search, floor=bands.similar)
    found = canonical_pairs(query_ids, neighbours)
    summary = DetectSummary(queried=int(query_ids.shape[0]))
    if not found:
        return summary
    images = Image.objects.defer("embedding").in_bulk({pk for key in found for pk in key})
    found = {key: sim for key, sim in found.items() if key[0] in images and key[1] in images}
    queried = query_ids.tolist()  # every pair found involves one of them
    existing = {
        (pair.image_a_id, pair.image_b_id): pair
        for pair in DuplicatePair.objects.filter(Q(image_a_id__in=queried) | Q(image_b_id__in=queried))
        if (pair.image_a_id, pair.image_b_id) in found
    }
    now = timezone.now()
    to_update: list[DuplicatePair] = []
    to_create: list[DuplicatePair] = []
    for (a_id, b_id), similarity in found.items():
        image_a, image_b = images[a_id], images[b_id]
        pair = existing.get((a_id, b_id))
        inliers = None
        if needs_verification(similarity, bands=bands):
            previous = pair.evidence.get("geometric_inliers") if pair is not None else None
            # Stored files never change, so an earlier verification of the same two files still holds.
            inliers = previous if previous is not None else verifier.inliers(image_a, image_b)
        kind = band_of(similarity, bands=bands, inliers=inliers, min_inliers=geometry.MIN_INLIERS)
        if kind is None:
            continue
        first, second = image_fingerprint(image_a), image_fingerprint(image_b)
        evidence = pair_evidence(
            cosine=similarity,
            a=image_facts(image_a),
            b=image_facts(image_b),
            phash_distance=_distance(first, second, 0),
            dhash_distance=_distance(first, second, 1),
            geometric_inliers=inliers,
        )
        if pair is not None:
            pair.similarity, pair.kind, pair.embedding_model = similarity, kind, model_name
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
                    embedding_model=model_name,
                    detected_at=now,
                )
            )
    summary.pairs = len(to_update) + len(to_create)
    with transaction.atomic():
        if to_update:
            DuplicatePair.objects.bulk_update(
                to_update, ["similarity", "kind", "evidence", "embedding_model", "detected_at", "updated_at"]
            )
        summary.updated = len(to_update)
        remembered = _remembered_decisions(to_create)
        fresh = [pair for pair in to_create if _key(pair) not in remembered]
        DuplicatePair.objects.bulk_create(fresh, ignore_conflicts=True)
        summary.created = len(fresh)
        for pair in to_create:
            decision = remembered.get(_key(pair))
            if decision is not None and _create_remembered(pair, decision):
                summary.remembered += 1
                summary.created += 1
    return summary


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
    _log(pair, action=action, previous=DuplicatePair.ReviewStatus.PENDING, user=None, source="remembered")
    return True


# --- review ----------------------------------------------------------------------------------------------


class ReviewError(ServiceError):
    """A review request that can't be carried out (409 unless said otherwise)."""

    default_status = 409


class ResolveAction:
    NOT_DUPLICATE = "not_duplicate"
    CONFIRM = "confirm"
    DELETE_A = "delete_a"
    DELETE_B = "delete_b"
    KEEP_SUGGESTED = "keep_suggested"

    ALL = (NOT_DUPLICATE, CONFIRM, DELETE_A, DELETE_B, KEEP_SUGGESTED)
    DELETES = (DELETE_A, DELETE_B, KEEP_SUGGESTED)
    LABELS = {
        NOT_DUPLICATE: "Not a duplicate (keep both)",
        CONFIRM: "Confirm duplicate (keep both for now)",
        DELETE_A: "Delete image A",
        DELETE_B: "Delete image B",
        KEEP_SUGGESTED: "Keep the suggested image, delete the other",
    }


def _user_or_none(user: User) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None  # type: ignore[return-value]


def _log(
    pair: DuplicatePair,
    *,
    action: str,
    previous: str,
    user: User,
    source: str,
    suggested: bool = False,
    deleted_name: str = "",
) -> DuplicateDecision:
    return DuplicateDecision.objects.create(
        pair=pair,
        image_a_id=pair.image_a_id,
        image_b_id=pair.image_b_id,
        image_a_sha256=pair.image_a.sha256,
        image_b_sha256=pair.image_b.sha256,
        sha_pair=sha_pair_key(pair.image_a.sha256, pair.image_b.sha256),
        action=action,
        suggested=suggested,
        previous_status=previous,
        new_status=pair.review_status,
        kind=pair.kind,
        similarity=pair.similarity,
        deleted_name=deleted_name[:255],
        source=source[:10],
        user=_user_or_none(user),
    )


def duplicate_pair_resolve(*, pair: DuplicatePair, action: str, user: User, source: str = "") -> DuplicateDecision:
    """Record a review decision; delete actions also delete the chosen image (file, thumbnail and pairs).

    A deletion is the last step of a review and cannot be undone (the file is gone); the other decisions
    can. keep_suggested deletes the image that suggest_keep ranks lower.
    """
    from gallery.services import image_delete

    if action not in ResolveAction.ALL:
        raise ReviewError(
            "invalid_action", f"Unknown action {action!r}; use one of {', '.join(ResolveAction.ALL)}.", status=400
        )
    with transaction.atomic():
        try:
            locked = DuplicatePair.objects.select_for_update().select_related("image_a", "image_b").get(pk=pair.pk)
        except DuplicatePair.DoesNotExist:
            raise ReviewError(
                "pair_gone", "This pair no longer exists: one of its images was deleted.", status=404
            ) from None
        previous = locked.review_status
        suggested = action == ResolveAction.KEEP_SUGGESTED
        if suggested:
            advice = suggest_keep(image_facts(locked.image_a), image_facts(locked.image_b))
            action = ResolveAction.DELETE_A if advice.remove.id == locked.image_a_id else ResolveAction.DELETE_B
        if action in (ResolveAction.NOT_DUPLICATE, ResolveAction.CONFIRM):
            status = (
                DuplicatePair.ReviewStatus.NOT_DUPLICATE
                if action == ResolveAction.NOT_DUPLICATE
                else DuplicatePair.ReviewStatus.CONFIRMED
            )
            locked.review_status = status
            locked.reviewed_by = _user_or_none(user)
            locked.reviewed_at = timezone.now()
            locked.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "updated_at"])
            return _log(locked, action=action, previous=previous, user=user, source=source)
        victim = locked.image_a if action == ResolveAction.DELETE_A else locked.image_b
        locked.review_status = DuplicatePair.ReviewStatus.CONFIRMED
        decision = _log(
            locked,
            action=action,
            previous=previous,
            user=user,
            source=source,
            suggested=suggested,
            deleted_name=victim.original_name or victim.file.name,
        )
        image_delete(image=victim)  # removes its file and thumbnail on commit, and all its pairs
        decision.refresh_from_db()
        return decision


def duplicate_decision_undo(*, decision: DuplicateDecision, user: User) -> DuplicateDecision:
    """Put the pair back to the status it had before this decision (the pair's latest standing decision)."""
    with transaction.atomic():
        decision = DuplicateDecision.objects.select_for_update().get(pk=decision.pk)
        if decision.undone_at is not None:
            raise ReviewError("already_undone", f"Decision #{decision.pk} was already undone.")
        if decision.is_delete:
            raise ReviewError(
                "cannot_undo_delete",
                f"Decision #{decision.pk} deleted image #{decision.deleted_image_id} ({decision.deleted_name}): its "
                "file is gone, so this cannot be undone. Upload the file again to restore it; the decisions "
                "about it are remembered by its content.",
            )
        if decision.pair_id is None:
            raise ReviewError("pair_gone", "The pair no longer exists: one of its images was deleted.")
        pair = DuplicatePair.objects.select_for_update().get(pk=decision.pair_id)
        latest = pair.decisions.active().order_by("-at", "-id").first()
        if latest is not None and latest.pk != decision.pk:
            raise ReviewError(
                "not_latest", f"A later decision on this pair (#{latest.pk}) stands: undo that one first."
            )
        earlier = pair.decisions.active().exclude(pk=decision.pk).order_by("-at", "-id").first()
        pair.review_status = decision.previous_status
        if pair.review_status == DuplicatePair.ReviewStatus.PENDING or earlier is None:
            pair.reviewed_by, pair.reviewed_at = None, None
        else:
            pair.reviewed_by_id, pair.reviewed_at = earlier.user_id, earlier.at
        pair.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "updated_at"])
        decision.undone_at = timezone.now()
        decision.undone_by = _user_or_none(user)
        decision.save(update_fields=["undone_at", "undone_by"])
        return decision


def duplicate_pair_undo_latest(*, pair: DuplicatePair, user: User) -> DuplicateDecision:
    """Undo the pair's latest standing decision."""
    latest = pair.decisions.active().order_by("-at", "-id").first()
    if latest is None:
        raise ReviewError("nothing_to_undo", "This pair has no decision to undo.")
    return duplicate_decision_undo(decision=latest, user=user)


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

    Pending pairs the scan no longer finds are removed; reviewed pairs stay, whatever the scan finds.
    """
    from search.models import IndexBuild
    from search.selectors import index_status
    from search.services import RebuildAlreadyRunningError, index_rebuild

    started = timezone.now()
    model_name = settings.IMGSIM_MODEL
    status = index_status()
    if rebuild_index and status["searchable"] and (status["pending"] or status["version"] is None):
        try:
            index_rebuild(requested_by="scan_duplicates")
        except RebuildAlreadyRunningError:
            logger.warning("an index rebuild is running; scanning with the served index and its exact tail")
    ids = list(Image.objects.searchable(model_name=model_name).order_by("id").values_list("id", flat=True))
    bands = duplicate_bands(model_name=model_name)
    verifier = _Verifier(enabled=geometric_verification_enabled() if verify is None else verify)
    search = library_neighbour_search(model_name=model_name)
    detection = DetectSummary()
    if progress is not None:
        progress(0, len(ids))
    for start in range(0, len(ids), DETECT_CHUNK):
        detection.add(_detect_chunk(ids[start : start + DETECT_CHUNK], model_name, bands, search, verifier))
        if progress is not None:
            progress(min(start + DETECT_CHUNK, len(ids)), len(ids))
    detection.verified = verifier.checked
    pruned = 0
    if prune:
        stale = DuplicatePair.objects.pending().exclude(detected_at__gte=started)
        pruned, _ = stale.delete()
    build = IndexBuild.objects.latest_ready(model_name=model_name)
    return ScanSummary(
        images=len(ids),
        detection=detection,
        pruned=pruned,
        index_version=build.pk if build else None,
        started_at=started,
    )


# --- calibration -----------------------------------------------------------------------------------------

CALIBRATE_TASK = "duplicates.tasks.calibrate"
SCAN_TASK = "duplicates.tasks.scan_library"
# Negatives are the sampled copies against this many library images at most (a random subset beyond).
CALIBRATION_POOL_MAX = 20_000
CALIBRATION_MIN_IMAGES = 10


def calibration_run_create(
    *, sample_size: int, target_precision: float, requested_by: User = None, schedule: bool = True
) -> CalibrationRun:
    """A queued calibration run; with schedule, a background task runs it once the transaction commits."""
    run = CalibrationRun.objects.create(
        model_name=settings.IMGSIM_MODEL,
        sample_size=sample_size,
        target_precision=target_precision,
        requested_by=_user_or_none(requested_by),
    )
    if schedule:
        from django_q.tasks import async_task

        transaction.on_commit(lambda: async_task(CALIBRATE_TASK, run.pk, task_name=f"calibrate duplicates #{run.pk}"))
    return run


def duplicates_scan_schedule(*, requested_by: str = "") -> None:
    """Queue a full re-scan in the background (after a model or threshold change)."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(SCAN_TASK, requested_by, task_name="re-scan duplicates"))


def calibration_run_execute(*, run: CalibrationRun, seed: int = 0) -> CalibrationRun:
    """Sample, edit, embed and compare (duplicates/calibration.py); store the result and the plot."""
    from django.core.files.base import ContentFile

    from duplicates import calibration
    from search.services import embedder_get

    CalibrationRun.objects.filter(pk=run.pk).update(status=CalibrationRun.Status.RUNNING)
    try:
        model_name = run.model_name
        ids = list(Image.objects.searchable(model_name=model_name).order_by("id").values_list("id", flat=True))
        if len(ids) < CALIBRATION_MIN_IMAGES:
            raise ValueError(
                f"Calibration needs at least {CALIBRATION_MIN_IMAGES} embedded images of {model_name}; "
                f"the library has {len(ids)}."
            )
        rng = np.random.default_rng(seed)
        sample = sorted(rng.choice(ids, size=min(run.sample_size, len(ids)), replace=False).tolist())
        pool_list = (
            ids
            if len(ids) <= CALIBRATION_POOL_MAX
            else sorted(rng.choice(ids, size=CALIBRATION_POOL_MAX, replace=False).tolist())
        )
        pool_ids, pool_vectors, _ = stored_vectors(model_name=model_name, ids=pool_list)
        sample_ids, sample_vectors, _ = stored_vectors(model_name=model_name, ids=sample)
        source_vectors = {int(pk): vector for pk, vector in zip(sample_ids, sample_vectors, strict=True)}
        images = Image.objects.defer("embedding").in_bulk(source_vectors)
        embedder = embedder_get()
        copy_rng = np.random.default_rng(seed + 1)
        vectors, sources, transforms = [], [], []
        for pk in source_vectors:
            try:
                with images[pk].file.open("rb") as handle, PILImage.open(handle) as picture:
                    copies = calibration.edited_copies(picture, rng=copy_rng)
            except (OSError, ValueError, PILImage.DecompressionBombError) as error:
                logger.warning("calibration skips image %s: %s", pk, error)
                continue
            vectors.append(embedder.embed_images([copy for _, copy in copies]))
            sources.extend([pk] * len(copies))
            transforms.extend(name for name, _ in copies)
        if not vectors:
            raise ValueError("None of the sampled images could be read from storage.")
        copy_vectors = np.vstack(vectors)
        copy_sources = np.array(sources, dtype=np.int64)
        probable = _probable_copies(source_vectors, copy_vectors, copy_sources, pool_ids, pool_vectors, images)
        result = calibration.calibrate(
            calibration.CalibrationSet(
                copy_vectors=copy_vectors,
                copy_source=copy_sources,
                copy_transform=transforms,
                source_vectors={pk: source_vectors[pk] for pk in set(sources)},
                pool_ids=pool_ids,
                pool_vectors=pool_vectors,
                probable_copies=probable,
            ),
            target_precision=run.target_precision,
        )
        payload = result.as_json()
        payload["library_size"] = len(ids)
        payload["pool_size"] = int(pool_ids.shape[0])
        payload["sampled"] = len(set(sources))
        run.result = payload
        run.suggested_near_duplicate = result.suggested_near_duplicate
        run.suggested_similar = result.suggested_similar
        title = (
            f"{model_name}: {len(set(sources))} sampled images x {len(calibration.TRANSFORMS)} edits, "
            f"{len(ids)} in library"
        )
        run.plot.save("plot.png", ContentFile(calibration.plot_png(result, title=title)), save=False)
        run.status = CalibrationRun.Status.DONE
    except Exception as error:
        logger.exception("calibration run %s failed", run.pk)
        run.status = CalibrationRun.Status.FAILED
        run.error = str(error)[:2000]
    run.finished_at = timezone.now()
    run.save()
    return run


def _probable_copies(
    source_vectors: dict[int, np.ndarray],
    copy_vectors: np.ndarray,
    copy_sources: np.ndarray,
    pool_ids: np.ndarray,
    pool_vectors: np.ndarray,
    images: dict[int, Image],
) -> dict[int, set[int]]:
    """Library images that already are copies of a sampled one: confirmed by a reviewer, or scoring like an
    edited copy and matched by geometric verification. They are set aside, not counted as negatives."""
    from duplicates import calibration

    probable: dict[int, set[int]] = {pk: set() for pk in source_vectors}
    confirmed = DuplicatePair.objects.filter(review_status=DuplicatePair.ReviewStatus.CONFIRMED)
    for a_id, b_id in confirmed.filter(image_a_id__in=list(probable)).values_list("image_a_id", "image_b_id"):
        probable[a_id].add(b_id)
    for a_id, b_id in confirmed.filter(image_b_id__in=list(probable)).values_list("image_a_id", "image_b_id"):
        probable[b_id].add(a_id)
    different = set(
        DuplicatePair.objects.filter(review_status=DuplicatePair.ReviewStatus.NOT_DUPLICATE).values_list(
            "image_a_id", "image_b_id"
        )
    )
    verifier = _Verifier(enabled=geometric_verification_enabled())
    positives = np.einsum("ij,ij->i", copy_vectors, np.stack([source_vectors[int(pk)] for pk in copy_sources]))
    floor = calibration.suspect_floor(positives)
    suspects_by_source = {
        pk: calibration.copy_suspects(
            source_id=pk,
            vectors=np.vstack([vector, copy_vectors[copy_sources == pk]]),
            floor=floor,
            pool_ids=pool_ids,
            pool_vectors=pool_vectors,
        )
        for pk, vector in source_vectors.items()
        if (copy_sources == pk).any()
    }
    suspect_images = Image.objects.defer("embedding").in_bulk(
        {other for others in suspects_by_source.values() for other in others}
    )
    for pk, others in suspects_by_source.items():
        for other in others:
            if other in probable[pk] or (min(pk, other), max(pk, other)) in different or other not in suspect_images:
                continue
            inliers = verifier.inliers(images[pk], suspect_images[other])
            if inliers is not None and inliers >= geometry.MIN_INLIERS:
                probable[pk].add(other)
    return {pk: others for pk, others in probable.items() if others}
