"""Reads of the duplicates app: thresholds in force, the library k-NN, review lists and counts, which image to
keep, which images still await detection, and "check before upload"."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, QuerySet

from duplicates import geometry
from duplicates.detection import Bands, NeighbourSearch, band_of, needs_verification
from duplicates.evidence import ImageFacts, KeepSuggestion, suggest_keep
from duplicates.models import CalibrationRun, DetectionCheck, DuplicateDecision, DuplicatePair
from gallery.models import Image
from search.library_view import LibrarySearch
from search.models import ThresholdSetting
from search.selectors import query_image_from_upload
from search.thresholds import ThresholdsInForce, measured_defaults, thresholds_in_force

STATUS_FILTERS = {"pending", "confirmed", "not_duplicate", "reviewed", "all"}


def duplicate_bands(*, model_name: str | None = None, thresholds: ThresholdsInForce | None = None) -> Bands:
    """The near-duplicate and similar thresholds in force for the configured backbone (read fresh: a worker
    that ran no search since thresholds were applied must not detect with the old ones)."""
    thresholds = thresholds or thresholds_in_force(model_name=model_name or settings.IMGSIM_MODEL)
    return Bands(near_duplicate=thresholds.near_duplicate, similar=thresholds.similar)


@dataclass(frozen=True)
class ThresholdsOverview:
    """The thresholds in force, where each comes from, and whether auto-calibration is still to come."""

    thresholds: ThresholdsInForce
    setting: ThresholdSetting | None  # the applied row in force (None: defaults or environment only)
    has_measured_defaults: bool
    auto_calibration_at: int  # indexed images auto-calibration waits for (0: off, or not needed)
    indexed: int | None  # indexed images of the model, counted only while auto-calibration waits


def thresholds_overview(*, model_name: str | None = None) -> ThresholdsOverview:
    """What the review pages, the calibration page and the API show about the thresholds in force."""
    model = model_name or settings.IMGSIM_MODEL
    thresholds = thresholds_in_force(model_name=model)
    setting = (
        ThresholdSetting.objects.select_related("applied_by").filter(pk=thresholds.setting_id).first()
        if thresholds.setting_id is not None
        else None
    )
    has_defaults = measured_defaults(model) is not None
    waits = (
        not has_defaults
        and settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES > 0
        and not ThresholdSetting.objects.filter(model_name=model).exists()
    )
    return ThresholdsOverview(
        thresholds=thresholds,
        setting=setting,
        has_measured_defaults=has_defaults,
        auto_calibration_at=settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES if waits else 0,
        indexed=Image.objects.searchable(model_name=model).count() if waits else None,
    )


def threshold_history(*, model_name: str | None = None, limit: int = 20) -> list[ThresholdSetting]:
    """The model's applied thresholds, newest first, with who applied and undid them."""
    model = model_name or settings.IMGSIM_MODEL
    rows = ThresholdSetting.objects.filter(model_name=model).select_related("applied_by", "undone_by")
    return list(rows.order_by("-id")[:limit])


# How far above the near-duplicate threshold a rejected (blurred) image and its nearest library photos must
# score, once both are blurred alike (duplicates.blur_match), to name it a copy, per model. Blurring alike
# brings two different photos closer too (median 0.77 for the best wrong one), hence above. Measured with
# bench/blurred_copies.py (offline MobileNet-V2, 208 library photos; 877 blurred copies of them rejected as
# blurry, 449 of photos not in the library): copies score 0.956 or more with their original, the best wrong
# photo at most 0.904; 0.88 + 0.05 names 98.6 % of the copies with ten candidates (the rest: their original
# is not among them; see rejected_copies.CANDIDATES) and no wrong photo, where the plain cosine names 44.9 %
# at its first threshold without a wrong one (0.78). A model without a measured offset gets 0: its
# near-duplicate threshold.
REJECTED_COPY_OFFSETS: dict[str, float] = {"mobilenet_v2": 0.05}


def rejected_copy_threshold(*, model_name: str) -> float:
    """The cosine (both blurred alike) at or above which a rejected image is named a copy of a library image."""
    near_duplicate = thresholds_in_force(model_name=model_name).near_duplicate
    return min(0.99, near_duplicate + REJECTED_COPY_OFFSETS.get(model_name, 0.0))


def geometric_verification_enabled() -> bool:
    """On by default: bench/duplicates.py measured it raising recall at the same precision."""
    return settings.IMGSIM_DUPLICATE_GEOMETRY


def detection_settings_key(*, model_name: str | None = None) -> str:
    """What a detection result depends on (backbone, both thresholds, geometric verification): an image
    checked under another key is checked again, so a model or threshold change re-detects the library."""
    model = model_name or settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model)
    geometry_flag = f"geo:{geometry.CHECK}" if geometric_verification_enabled() else "nogeo"
    return f"{model}:{bands.near_duplicate:.4f}:{bands.similar:.4f}:{geometry_flag}"[:100]


def images_awaiting_detection(*, model_name: str | None = None) -> QuerySet[Image]:
    """Searchable images without a detection check under the settings in force (the durable to-do list)."""
    model = model_name or settings.IMGSIM_MODEL
    key = detection_settings_key(model_name=model)
    checked = DetectionCheck.objects.filter(image_id=OuterRef("pk"), settings_key=key)
    return Image.objects.searchable(model_name=model).filter(~Exists(checked))


def library_neighbour_search(*, model_name: str) -> NeighbourSearch:
    """Purely visual k-NN over the library (served index + tail, exact cosine); the tail is read once."""
    library = LibrarySearch(model_name=model_name)
    return lambda queries, k: library.search(queries, k=k)


def image_facts(image: Image) -> ImageFacts:
    """The facts about one image that evidence and the keep suggestion compare."""
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


def duplicate_pair_list(
    *, status: str = "pending", kind: str = "", image_id: int | None = None
) -> QuerySet[DuplicatePair]:
    """Pairs to review, most alike first; status "reviewed" is confirmed + not_duplicate, "all" everything."""
    pairs = (
        DuplicatePair.objects.select_related("image_a", "image_b", "reviewed_by")
        .defer("image_a__embedding", "image_b__embedding")
        .filter(image_a__trashed_at__isnull=True, image_b__trashed_at__isnull=True)
    )
    if status in DuplicatePair.ReviewStatus.values:
        pairs = pairs.filter(review_status=status)
    elif status == "reviewed":
        pairs = pairs.exclude(review_status=DuplicatePair.ReviewStatus.PENDING)
    if kind in DuplicatePair.Kind.values:
        pairs = pairs.filter(kind=kind)
    if image_id is not None:
        pairs = pairs.involving(image_id)
    return pairs.order_by("-similarity", "id")


def duplicate_pair_counts() -> dict[str, dict[str, int]]:
    """{kind: {status: n, "all": n}} for the review tabs."""
    counts = {kind: dict.fromkeys([*DuplicatePair.ReviewStatus.values, "all"], 0) for kind in DuplicatePair.Kind.values}
    visible = DuplicatePair.objects.filter(image_a__trashed_at__isnull=True, image_b__trashed_at__isnull=True)
    for row in visible.values("kind", "review_status").annotate(n=Count("id")):
        if row["kind"] in counts:
            counts[row["kind"]][row["review_status"]] = row["n"]
            counts[row["kind"]]["all"] += row["n"]
    return counts


def keep_suggestion(pair: DuplicatePair) -> KeepSuggestion:
    """Which of the two to keep: higher resolution, then sharper, then higher rated, then the larger file."""
    return suggest_keep(image_facts(pair.image_a), image_facts(pair.image_b))


@dataclass(frozen=True)
class PairReview:
    """A pair with what a reviewer needs next to it."""

    pair: DuplicatePair
    suggestion: KeepSuggestion
    last_decision: DuplicateDecision | None

    @property
    def keep_id(self) -> int:
        return self.suggestion.keep.id

    @property
    def keep_a(self) -> bool:
        return self.suggestion.keep.id == self.pair.image_a_id

    @property
    def keep_letter(self) -> str:
        return "A" if self.keep_a else "B"

    @property
    def delete_letter(self) -> str:
        return "B" if self.keep_a else "A"

    @property
    def delete_id(self) -> int:
        return self.suggestion.remove.id

    @property
    def delete_kept_action(self) -> str:
        """The action that deletes the image the suggestion would keep (the reviewer overrides it)."""
        return "delete_a" if self.keep_a else "delete_b"


def pair_reviews(pairs: list[DuplicatePair]) -> list[PairReview]:
    """Suggestions and each pair's latest standing decision, in two queries whatever the page size."""
    latest: dict[int, DuplicateDecision] = {}
    decisions = DuplicateDecision.objects.active().filter(pair__in=pairs).select_related("user").order_by("-at", "-id")
    for decision in decisions:
        latest.setdefault(decision.pair_id, decision)
    return [PairReview(pair, keep_suggestion(pair), latest.get(pair.pk)) for pair in pairs]


def image_pairs(*, image: Image) -> list[DuplicatePair]:
    """The pairs an image is part of (for its page), duplicates first."""
    return list(
        duplicate_pair_list(status="all", image_id=image.pk).order_by("kind", "-similarity")  # "near..." < "similar"
    )


def decision_list(*, pair_id: int | None = None, include_undone: bool = True) -> QuerySet[DuplicateDecision]:
    decisions = DuplicateDecision.objects.select_related("user", "undone_by")
    if pair_id is not None:
        decisions = decisions.filter(pair_id=pair_id)
    if not include_undone:
        decisions = decisions.active()
    return decisions


def latest_calibration(*, model_name: str | None = None) -> CalibrationRun | None:
    """The newest finished calibration (of one model when given): the only one whose result may be applied."""
    runs = CalibrationRun.objects.filter(status=CalibrationRun.Status.DONE)
    if model_name is not None:
        runs = runs.filter(model_name=model_name)
    return runs.order_by("-id").first()


@dataclass(frozen=True)
class UploadMatch:
    image: Image
    similarity: float
    band: str | None  # near_duplicate, similar, or None (just the nearest)
    inliers: int | None


@dataclass(frozen=True)
class UploadCheck:
    exact_duplicate: Image | None
    matches: list[UploadMatch]
    near_duplicate: float
    similar: float
    model: str


def check_upload(*, data: bytes, k: int = 10) -> UploadCheck:
    """The nearest library images to an upload with the band detection would give them; nothing is stored."""
    sha256 = hashlib.sha256(data).hexdigest()
    exact = Image.objects.defer("embedding").filter(sha256=sha256).first()
    query = query_image_from_upload(data=data)  # validates (4xx for a bad file) and embeds
    model_name = settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model_name)
    scores, ids = library_neighbour_search(model_name=model_name)(query.vector.reshape(1, -1), k)
    ranked = [(int(pk), float(score)) for pk, score in zip(ids[0], scores[0], strict=True) if pk >= 0]
    images = Image.objects.defer("embedding").in_bulk([pk for pk, _ in ranked])
    upload_features = None
    matches = []
    for pk, similarity in ranked:
        image = images.get(pk)
        if image is None:
            continue
        inliers = None
        if geometric_verification_enabled() and needs_verification(similarity, bands=bands):
            if upload_features is None:
                upload_features = geometry.local_features(geometry.load_for_matching(io.BytesIO(data)))
            inliers = _inliers_with(upload_features, image)
        band = band_of(similarity, bands=bands, inliers=inliers, min_inliers=geometry.MIN_INLIERS)
        matches.append(UploadMatch(image=image, similarity=similarity, band=band, inliers=inliers))
    return UploadCheck(
        exact_duplicate=exact,
        matches=matches,
        near_duplicate=bands.near_duplicate,
        similar=bands.similar,
        model=model_name,
    )


def _inliers_with(features: geometry.LocalFeatures, image: Image) -> int | None:
    try:
        with image.file.open("rb") as handle:
            other = geometry.local_features(geometry.load_for_matching(handle))
    except (OSError, ValueError):
        return None
    return geometry.count_inliers(features, other)
