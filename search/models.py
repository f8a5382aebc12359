"""Index builds: each PCA + FAISS index file is derived from the stored vectors and recorded here."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# Builds nobody asked for: the index repairing itself, refreshing itself, or retrying a failed repair.
AUTOMATIC_REQUESTERS = ("self-repair", "automatic", "repair retry")


class IndexBuildQuerySet(models.QuerySet["IndexBuild"]):
    def ready(self) -> IndexBuildQuerySet:
        """Builds whose file is complete and may be served."""
        return self.filter(status=IndexBuild.Status.READY)

    def latest_ready(self, *, model_name: str) -> IndexBuild | None:
        """The build searches serve for a model: its newest ready one (None before the first build)."""
        return self.ready().filter(model_name=model_name).order_by("-id").first()

    def automatic_failures_since_ready(self, *, model_name: str) -> IndexBuildQuerySet:
        """Automatic builds of the model that failed after its newest ready build: the repair's failure streak."""
        builds = self.filter(model_name=model_name)
        latest_ready = builds.ready().order_by("-id").values_list("id", flat=True).first()
        failed = builds.filter(status=IndexBuild.Status.FAILED, requested_by__in=AUTOMATIC_REQUESTERS)
        return failed if latest_ready is None else failed.filter(id__gt=latest_ready)


class IndexBuild(models.Model):
    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded"

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.BUILDING, db_index=True)
    model_name = models.CharField(max_length=50)
    kind = models.CharField(max_length=12, blank=True, help_text="exact or hnsw")
    file_name = models.CharField(max_length=255, blank=True)
    full_dim = models.PositiveIntegerField(default=0)
    index_dim = models.PositiveIntegerField(default=0)
    vector_count = models.PositiveIntegerField(default=0)
    max_embedded_at = models.DateTimeField(
        null=True, blank=True, help_text="Vectors embedded after this are searched exactly until the next build."
    )
    changes_through = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The newest library change committed before the build read the vectors: later ones (and the "
        "ids listed in params['changes_open'], still uncommitted then) are applied on top of it.",
    )
    params = models.JSONField(default=dict, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = IndexBuildQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The database itself guarantees that only one rebuild runs at a time, across all machines.
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="building"), name="index_build_one_at_a_time"
            ),
        ]

    def __str__(self) -> str:
        return f"index v{self.pk} ({self.model_name}, {self.kind or self.status}, {self.vector_count} vectors)"

    @property
    def version(self) -> int:
        return self.pk


class LibraryChange(models.Model):
    """One write that changes what a search may return, logged in the same transaction as the write.

    Long-lived processes keep the library in memory (served index + the vectors embedded since its build)
    and read only the rows of this log newer than the last they saw, so a search learns of a new, deleted,
    trashed or re-embedded image, or of a new index build, with one small query instead of a table scan.
    The id is the library's change counter. Rows older than CHANGE_LOG_RETENTION are pruned at rebuilds.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image changed"
        INDEX = "index", "Index build served or retired"
        THRESHOLDS = "thresholds", "Thresholds applied or undone"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # No foreign key: the image may be gone, which is the news this row carries.
    image_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"change {self.pk}: {self.kind} {self.image_id or ''}".rstrip()


class ThresholdSettingQuerySet(models.QuerySet["ThresholdSetting"]):
    def in_force(self) -> ThresholdSettingQuerySet:
        """Applications not undone: the newest one per model is in force."""
        return self.filter(undone_at__isnull=True)


class ThresholdSetting(models.Model):
    """Thresholds applied to one backbone, measured on this library; the rows are the log of every change.

    The newest row of a model that is not undone is in force (below environment variables, above the
    model's measured defaults: search/thresholds.py). Undo marks the row, so the one before it is in force
    again. Rows are never edited otherwise.
    """

    class Origin(models.TextChoices):
        CALIBRATED = "calibrated", "Calibrated on this library"
        AUTO_CALIBRATED = "auto_calibrated", "Auto-calibrated on this library"

    model_name = models.CharField(max_length=50, db_index=True)
    match = models.FloatField(help_text="Search results at or above this match the query.")
    near_duplicate = models.FloatField()
    similar = models.FloatField()
    origin = models.CharField(max_length=20, choices=Origin.choices)
    # A plain number: the calibration runs live in the duplicates app, above this one.
    calibration_run_id = models.BigIntegerField(null=True, blank=True, help_text="The calibration measured them.")
    measured_at = models.DateTimeField(null=True, blank=True)
    sample = models.JSONField(default=dict, blank=True, help_text="Sample facts of the calibration (sizes, recall).")
    previous = models.JSONField(default=dict, blank=True, help_text="The values in force before, with their sources.")
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    applied_at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ThresholdSettingQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(similar__lte=models.F("near_duplicate")), name="threshold_similar_not_above_near"
            ),
            # Auto-calibration applies itself once per model, whichever worker gets there first.
            models.UniqueConstraint(
                fields=["model_name"], condition=models.Q(origin="auto_calibrated"), name="threshold_auto_once"
            ),
        ]

    def __str__(self) -> str:
        state = "undone" if self.undone_at else "applied"
        return f"{self.model_name}: {self.near_duplicate:.3f} / {self.similar:.3f} ({self.origin}, {state})"
