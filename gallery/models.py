"""The image library: images with their metadata, embedding and status, and duplicate pairs for review."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from gallery.quality import DECIDING_SCORES, REJECTION_FIGURES, rejection_figures

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

# What each accepted (decoded) format is stored and served as; the uploader's file name never decides it.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
FORMAT_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def original_upload_to(instance: Image, filename: str) -> str:
    """Random storage names whose extension comes from the decoded format (never the uploader's name)."""
    extension = FORMAT_EXTENSIONS.get(instance.format, "bin")
    token = uuid.uuid4().hex
    return f"originals/{token[:2]}/{token[2:4]}/{token}.{extension}"


def thumbnail_upload_to(instance: Image, filename: str) -> str:
    token = uuid.uuid4().hex
    return f"thumbnails/{token[:2]}/{token}.webp"


# Rejections whose image is embedded (never searchable) to tell the uploader it is a copy of a library photo.
# Only blurry: a copy rejected as too small, mostly black or mostly white keeps so little of its original that
# no threshold names more than a few of them without false notices (bench/blurred_copies.py; figures in
# bench/README.md); a solid colour has no content to compare.
COPY_CHECK_REASONS: tuple[str, ...] = ("blurry",)


class ImageQuerySet(models.QuerySet["Image"]):
    def indexed(self) -> ImageQuerySet:
        return self.filter(status=Image.Status.INDEXED)

    def embedded(self) -> ImageQuerySet:
        return self.filter(embedding__isnull=False)

    def in_library(self) -> ImageQuerySet:
        """Images not in the trash."""
        return self.filter(trashed_at__isnull=True)

    def trashed(self) -> ImageQuerySet:
        return self.filter(trashed_at__isnull=False)

    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> ImageQuerySet:
        """The images `user` may open by id (page, file, thumbnail, previews, similar): staff every one (the
        trash page shows trashed images), anyone else the library."""
        if user.is_active and getattr(user, "is_staff", False):
            return self
        return self.in_library()

    def awaiting_copy_check(self) -> ImageQuerySet:
        """Rejected images still to be compared with the library (is it a blurred copy of a library photo?)."""
        return self.filter(
            status=Image.Status.REJECTED,
            reason_code__in=COPY_CHECK_REASONS,
            copy_checked_at__isnull=True,
            trashed_at__isnull=True,
        )

    def searchable(self, *, model_name: str | None = None) -> ImageQuerySet:
        """Images that may appear in search results and duplicate pairs (with a vector of that model, not in
        the trash)."""
        images = self.filter(status=Image.Status.INDEXED, embedding__isnull=False, trashed_at__isnull=True)
        return images if model_name is None else images.filter(embedding_model=model_name)


class Image(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        INDEXED = "indexed", "Indexed"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    file = models.FileField(
        upload_to=original_upload_to,
        max_length=255,
        blank=True,
        help_text="The copy in media (uploads and import_images); empty for an image read from library sources.",
    )
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=255, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, unique=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    file_size = models.PositiveBigIntegerField(help_text="Size of the stored file in bytes.")

    camera_make = models.CharField(max_length=100, blank=True)
    camera_model = models.CharField(max_length=100, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    orientation = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="EXIF orientation of the file; width/height are after applying it."
    )
    rating = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Star rating 0-5 from EXIF/XMP.")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    reason_code = models.CharField(max_length=40, blank=True)
    status_message = models.TextField(blank=True)
    quality_score = models.FloatField(null=True, blank=True, help_text="The score that decided a rejection.")
    quality_threshold = models.FloatField(null=True, blank=True)
    quality_scores = models.JSONField(default=dict, blank=True)

    copy_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The library image this rejected (blurred) image looks like a copy of.",
    )
    copy_similarity = models.FloatField(
        null=True, blank=True, help_text="Cosine to copy_of once both are blurred alike (duplicates.blur_match)."
    )
    copy_checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When a rejected image was compared with the library (None: not yet)."
    )

    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=50, blank=True)
    embedded_at = models.DateTimeField(null=True, blank=True)
    embed_attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, db_index=True)

    trashed_at = models.DateTimeField(
        null=True, blank=True, help_text="In the trash since then: out of the library and search, file kept."
    )
    trashed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stack_cover = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="stacked",
        help_text="Stacked under this image: the library grid shows the cover with a count instead.",
    )
    restored_at = models.DateTimeField(
        null=True, blank=True, help_text="Last restored from the trash: searched in the index tail until a rebuild."
    )

    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "claimed_until"], name="image_status_claim_idx"),
            models.Index(fields=["rating"], name="image_rating_idx"),
            models.Index(fields=["embedded_at"], name="image_embedded_at_idx"),
            models.Index(fields=["trashed_at"], name="image_trashed_at_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=0, rating__lte=5), name="image_rating_0_5"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name or self.file.name or self.sha256[:12]}"

    @property
    def content_type(self) -> str:
        """The MIME type of the stored original, from the format it decoded as (never from a file name)."""
        return FORMAT_CONTENT_TYPES.get(self.format, "application/octet-stream")

    @property
    def download_name(self) -> str:
        """The uploader's name with the extension of the real format: 'holiday.html' is offered as 'holiday.jpg'."""
        stem = PurePosixPath(self.original_name).stem if self.original_name else f"image-{self.pk}"
        return f"{stem or f'image-{self.pk}'}.{FORMAT_EXTENSIONS.get(self.format, 'bin')}"

    @property
    def in_trash(self) -> bool:
        return self.trashed_at is not None

    @property
    def copy_check(self) -> str | None:
        """Where a blurry rejection's copy check is: pending, then checked; None for images it does not apply to."""
        if self.status != Image.Status.REJECTED or self.reason_code not in COPY_CHECK_REASONS:
            return None
        if self.copy_checked_at is not None:
            return "checked"
        return None if self.trashed_at is not None else "pending"

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000

    @property
    def quality_figures(self) -> tuple[str, str] | None:
        """A quality rejection's measured score and limit as people read them: written with enough digits that
        they compare as the check did (gallery.quality.rejection_figures); None for any other image."""
        if self.reason_code not in REJECTION_FIGURES or self.quality_score is None or self.quality_threshold is None:
            return None
        return rejection_figures(self.reason_code, self.quality_score, self.quality_threshold)

    @property
    def quality_measurements(self) -> list[tuple[str, str]]:
        """The quality scores worth showing a person, labelled and rounded; the one a rejection was decided on
        as its message and quality_figures write it."""
        labels = [
            ("sharpness", "Sharpness (0-1)", "{:.3f}"),
            ("color_std", "Colour spread", "{:.1f}"),
            ("dark_fraction", "Near-black pixels", "{:.1%}"),
            ("bright_fraction", "Near-white pixels", "{:.1%}"),
        ]
        scores = self.quality_scores or {}
        figures = self.quality_figures
        deciding = DECIDING_SCORES.get(self.reason_code) if figures is not None else None
        return [
            (label, figures[0] if key == deciding and figures is not None else fmt.format(scores[key]))
            for key, label, fmt in labels
            if key in scores
        ]

    @property
    def vector(self) -> np.ndarray | None:
        """The stored embedding as a float32 vector (the source of truth every index derives from)."""
        if self.embedding is None:
            return None
        return np.frombuffer(bytes(self.embedding), dtype=np.float32)


class LibrarySource(models.Model):
    """A folder registered by staff whose files imgsim reads where they are: it stores only their renditions,
    vectors and metadata (gallery.originals opens the bytes)."""

    class State(models.TextChoices):
        NEW = "new", "Not scanned yet"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"

    name = models.CharField(max_length=100, unique=True)
    root = models.CharField(max_length=1024, unique=True, help_text="Absolute path, symlinks resolved.")
    writable = models.BooleanField(default=False, help_text="Read-only unless set.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.NEW)
    state_message = models.TextField(blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_scanned_at = models.DateTimeField(null=True, blank=True)
    scan_claim_token = models.CharField(max_length=32, blank=True)
    scan_claimed_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def offline(self) -> bool:
        return self.state == LibrarySource.State.OFFLINE


class SourceReachQuerySet(models.QuerySet["SourceReach"]):
    def kept(self, *, now: datetime | None = None) -> SourceReachQuerySet:
        """Readings checked within SourceReach.KEPT: the ones the Sources page, the API and the admin show."""
        return self.filter(checked_at__gte=(now or timezone.now()) - SourceReach.KEPT)

    def expired(self) -> SourceReachQuerySet:
        """Readings nobody refreshed within SourceReach.KEPT (a machine taken out of service): forgotten."""
        return self.filter(checked_at__lt=timezone.now() - SourceReach.KEPT)


class SourceReach(models.Model):
    """Whether one machine's web or worker processes could read a source's root, and when they last looked.

    Several machines serve and scan the same sources: a root one machine cannot read (a share not mounted there)
    must not make the source offline for the others, and the Sources page has to say which machine it is. One
    row per source, machine and role, upserted at most once a minute per process (gallery.source_reach)."""

    class Role(models.TextChoices):
        WEB = "web", "Web"
        WORKER = "worker", "Worker"

    # A reading this recent says what the machine sees now: a scan that cannot read the root leaves the source
    # online while another machine read it this recently.
    RECENT = timedelta(minutes=10)
    # Older rows are forgotten (a machine taken out of service, a role no longer run there).
    KEPT = timedelta(hours=6)

    source = models.ForeignKey(LibrarySource, on_delete=models.CASCADE, related_name="reach")
    machine = models.CharField(max_length=255, help_text="IMGSIM_MACHINE_NAME, the host name unless set.")
    role = models.CharField(max_length=10, choices=Role.choices)
    readable = models.BooleanField()
    error = models.TextField(blank=True, help_text="Why the root could not be read.")
    checked_at = models.DateTimeField()

    objects = SourceReachQuerySet.as_manager()

    class Meta:
        ordering = ["machine", "role"]
        verbose_name_plural = "source reach"
        constraints = [
            models.UniqueConstraint(fields=["source", "machine", "role"], name="source_reach_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.machine} ({self.role}) {'can' if self.readable else 'cannot'} read {self.source}"

    @property
    def stale(self) -> bool:
        """Not checked for a while: the machine may have been fixed (or stopped) since."""
        return self.checked_at < timezone.now() - SourceReach.RECENT

    @property
    def reader(self) -> str:
        return f"{self.machine} ({self.get_role_display().lower()})"


class SourceFileQuerySet(models.QuerySet["SourceFile"]):
    def readable(self) -> SourceFileQuerySet:
        """Files to open an image's bytes from: present (or in the source's quarantine), in a source that is
        not offline."""
        states = [SourceFile.State.PRESENT, SourceFile.State.QUARANTINED]
        return self.filter(state__in=states, image__isnull=False).exclude(source__state=LibrarySource.State.OFFLINE)


class SourceFile(models.Model):
    """One file under a source's root, as the last scan saw it, and the image its content is.

    Several files with the same bytes (a copy in another folder, or a file identical to an upload) are several
    rows for one Image: the image is the content (sha256 is unique; its vector, pairs, groups and decisions
    belong to the content), the rows are where that content lives, so the copies show on the image page and
    none of them is embedded twice."""

    class State(models.TextChoices):
        PRESENT = "present", "Present"
        MISSING = "missing", "Missing"
        REFUSED = "refused", "Refused"
        QUARANTINED = "quarantined", "In the source's quarantine folder"

    source = models.ForeignKey(LibrarySource, on_delete=models.CASCADE, related_name="files")
    relative_path = models.CharField(max_length=1024, help_text="POSIX path below the source's root.")
    size = models.PositiveBigIntegerField()
    mtime_ns = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="source_files")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PRESENT)
    reason_code = models.CharField(max_length=40, blank=True, help_text="Why a refused file is not an image.")
    status_message = models.TextField(blank=True)
    missing_since = models.DateTimeField(null=True, blank=True)
    quarantined_from = models.CharField(
        max_length=1024, blank=True, help_text="Where a quarantined file was (restore moves it back there)."
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SourceFileQuerySet.as_manager()

    class Meta:
        ordering = ["source_id", "relative_path"]
        constraints = [
            models.UniqueConstraint(fields=["source", "relative_path"], name="source_file_path_unique"),
        ]
        indexes = [models.Index(fields=["state", "missing_since"], name="source_file_missing_idx")]

    def __str__(self) -> str:
        return f"{self.source.name}:{self.relative_path}"


class SourceScan(models.Model):
    """One scan of a source: its progress while it runs (files seen, accepted, rejected with reasons) and what
    it found (new, changed, moved, missing, returned files)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        OFFLINE = "offline", "Source offline"
        SKIPPED = "skipped", "Skipped (another scan was running)"
        UNREADABLE = "unreadable", "Skipped (this worker cannot read the folder)"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(LibrarySource, on_delete=models.CASCADE, related_name="scans")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    files_total = models.PositiveIntegerField(null=True, blank=True, help_text="Image files found by the walk.")
    files_seen = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0, help_text="New images queued for embedding.")
    known_content = models.PositiveIntegerField(default=0, help_text="Files whose bytes were already an image.")
    rejected = models.PositiveIntegerField(default=0, help_text="Stored, rejected for quality, or refused.")
    changed = models.PositiveIntegerField(default=0)
    moved = models.PositiveIntegerField(default=0)
    missing = models.PositiveIntegerField(default=0)
    returned = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Symlinks and unreadable folders, not read.")
    removed = models.PositiveIntegerField(default=0, help_text="Missing past the grace period: out of the library.")
    reasons = models.JSONField(default=dict, blank=True, help_text="Rejections and skips by reason code.")
    problems = models.JSONField(default=list, blank=True, help_text="The first problems: path, reason, message.")

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"scan {self.pk} of {self.source.name}: {self.status}"

    @property
    def in_progress(self) -> bool:
        return self.status in (SourceScan.Status.QUEUED, SourceScan.Status.RUNNING)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None until the walk has counted the files and one was read."""
        if self.status != SourceScan.Status.RUNNING or not self.files_total or not self.files_seen:
            return None
        if self.started_at is None:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        return max(0.0, elapsed / self.files_seen * (self.files_total - self.files_seen))

    @property
    def percent(self) -> int | None:
        if not self.files_total:
            return None
        return min(100, round(100 * self.files_seen / self.files_total))


class SourceFileMove(models.Model):
    """Every move imgsim makes in a writable source (into its quarantine folder, back, or deleting from it),
    done or failed with the reason: the log a person reads, and what an undo starts from."""

    class Action(models.TextChoices):
        QUARANTINE = "quarantine", "Moved to the quarantine folder"
        RESTORE = "restore", "Moved back"
        PURGE = "purge", "Deleted from the quarantine folder"

    class Status(models.TextChoices):
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        UNDONE = "undone", "Undone"

    source = models.ForeignKey(LibrarySource, on_delete=models.CASCADE, related_name="moves")
    source_file = models.ForeignKey(SourceFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=12, choices=Action.choices)
    from_path = models.CharField(max_length=1024)
    to_path = models.CharField(max_length=1024, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices)
    code = models.CharField(max_length=40, blank=True, help_text="Why it failed: collision, permission_denied, ...")
    message = models.TextField(blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.from_path}: {self.status}"
