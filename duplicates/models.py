"""Near-duplicate and similar pairs found among the library's images, the review of them, and its log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from gallery.models import Image


def sha_pair_key(first: str, second: str) -> str:
    """The two files' sha256s in sorted order: names a pair of files whatever their ids or upload order."""
    low, high = sorted((first, second))
    return f"{low}:{high}"


class DuplicatePairQuerySet(models.QuerySet["DuplicatePair"]):
    def pending(self) -> DuplicatePairQuerySet:
        return self.filter(review_status=DuplicatePair.ReviewStatus.PENDING)

    def near_duplicates(self) -> DuplicatePairQuerySet:
        return self.filter(kind=DuplicatePair.Kind.NEAR_DUPLICATE)

    def involving(self, image_id: int) -> DuplicatePairQuerySet:
        return self.filter(Q(image_a_id=image_id) | Q(image_b_id=image_id))


class DuplicatePair(models.Model):
    """Two images that look alike; stored once, lower id first, whatever the order they were found in."""

    class Kind(models.TextChoices):
        NEAR_DUPLICATE = "near_duplicate", "Near-duplicate"
        SIMILAR = "similar", "Similar"

    class ReviewStatus(models.TextChoices):
        PENDING = "pending", "Pending review"
        CONFIRMED = "confirmed", "Confirmed duplicate"
        NOT_DUPLICATE = "not_duplicate", "Not a duplicate"

    image_a = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    image_b = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    similarity = models.FloatField(help_text="Exact cosine of the two embeddings.")
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    evidence = models.JSONField(default=dict, blank=True)
    embedding_model = models.CharField(max_length=50, blank=True, help_text="The backbone the similarity is from.")
    review_status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    detected_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last time detection found the pair (a full scan prunes pending pairs it no longer finds).",
    )

    objects = DuplicatePairQuerySet.as_manager()

    class Meta:
        ordering = ["-similarity", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image_a", "image_b"], name="duplicate_pair_unique"),
            models.CheckConstraint(condition=Q(image_a__lt=models.F("image_b")), name="duplicate_pair_ordered"),
        ]
        indexes = [
            models.Index(fields=["review_status", "kind", "-similarity"], name="duplicate_pair_review_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.image_a_id} ~ #{self.image_b_id} ({self.similarity:.3f})"

    def other(self, image_id: int) -> Image:
        """The pair's image that isn't `image_id`."""
        return self.image_b if self.image_a_id == image_id else self.image_a


class DetectionCheck(models.Model):
    """The durable record of detection: this image was compared with the library under these settings.

    Written in the same transaction as the pairs the check found, so an embedded image without a row (or
    with a row of other settings) is exactly one whose check is still to do, whatever was killed when.
    """

    image = models.OneToOneField(Image, primary_key=True, on_delete=models.CASCADE, related_name="+")
    settings_key = models.CharField(max_length=100, db_index=True, help_text="Backbone, thresholds, verification.")
    checked_at = models.DateTimeField()

    class Meta:
        # The review page's detection pace: the checks of the settings in force in the last minutes.
        indexes = [models.Index(fields=["settings_key", "checked_at"], name="detection_check_recent_idx")]

    def __str__(self) -> str:
        return f"#{self.image_id} checked {self.checked_at:%Y-%m-%d %H:%M} ({self.settings_key})"


class DetectionClaim(models.Model):
    """A lease on one image's detection check, so that two workers never check the same image at once.

    Taken by inserting the row (the primary key makes it atomic), or by overwriting an expired one (its worker
    died); deleted once the check has committed or failed. DetectionCheck, not the claim, says what is done.
    """

    image = models.OneToOneField(Image, primary_key=True, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=32, db_index=True)
    claimed_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"#{self.image_id} claimed until {self.claimed_until:%H:%M:%S}"


class ReviewLogEntry(models.Model):
    """What every review log entry records: who decided and when, and who undid it and when (if anyone)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True
        ordering = ["-at", "-id"]


class DuplicateDecisionQuerySet(models.QuerySet["DuplicateDecision"]):
    def active(self) -> DuplicateDecisionQuerySet:
        return self.filter(undone_at__isnull=True)


class DuplicateDecision(ReviewLogEntry):
    """One review decision, who made it and when; it outlives the pair and names the files by sha256.

    A pair disappears when one of its images is deleted; the decision stays, and because it names both
    files by content a re-upload of the same bytes gets the decision back instead of a new pending pair.
    """

    class Action(models.TextChoices):
        NOT_DUPLICATE = "not_duplicate", "Not a duplicate (keep both)"
        CONFIRM = "confirm", "Confirmed duplicate"
        DELETE_A = "delete_a", "Moved image A to the trash"
        DELETE_B = "delete_b", "Moved image B to the trash"

    DELETE_ACTIONS = (Action.DELETE_A, Action.DELETE_B)

    pair = models.ForeignKey(DuplicatePair, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions")
    image_a_id = models.BigIntegerField(help_text="Image ids at the time; the images may since have been deleted.")
    image_b_id = models.BigIntegerField()
    image_a_sha256 = models.CharField(max_length=64)
    image_b_sha256 = models.CharField(max_length=64)
    sha_pair = models.CharField(max_length=129, db_index=True, help_text="Both sha256s, sorted: finds re-uploads.")
    action = models.CharField(max_length=20, choices=Action.choices)
    suggested = models.BooleanField(default=False, help_text="The deleted image was the suggested one.")
    previous_status = models.CharField(max_length=20, choices=DuplicatePair.ReviewStatus.choices)
    new_status = models.CharField(max_length=20, choices=DuplicatePair.ReviewStatus.choices)
    kind = models.CharField(max_length=20, choices=DuplicatePair.Kind.choices, blank=True)
    similarity = models.FloatField(null=True, blank=True)
    deleted_name = models.CharField(max_length=255, blank=True, help_text="File name of the deleted image.")
    source = models.CharField(max_length=10, blank=True, help_text="admin, web, api or remembered")

    objects = DuplicateDecisionQuerySet.as_manager()

    class Meta(ReviewLogEntry.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.image_a_id} ~ #{self.image_b_id}"

    @classmethod
    def for_pair(
        cls,
        *,
        pair: DuplicatePair,
        action: str,
        previous: str,
        new_status: str,
        user: models.Model | None,
        source: str,
        suggested: bool = False,
        deleted_name: str = "",
    ) -> DuplicateDecision:
        """The (unsaved) log entry of a decision on a pair, naming both files by content so that it outlives
        the pair and its images (pair review and group review both log through here)."""
        return cls(
            pair=pair,
            image_a_id=pair.image_a_id,
            image_b_id=pair.image_b_id,
            image_a_sha256=pair.image_a.sha256,
            image_b_sha256=pair.image_b.sha256,
            sha_pair=sha_pair_key(pair.image_a.sha256, pair.image_b.sha256),
            action=action,
            suggested=suggested,
            previous_status=previous,
            new_status=new_status,
            kind=pair.kind,
            similarity=pair.similarity,
            deleted_name=deleted_name[:255],
            source=source[:10],
            user=user,
        )

    @property
    def is_delete(self) -> bool:
        return self.action in self.DELETE_ACTIONS

    @property
    def deleted_image_id(self) -> int | None:
        if self.action == self.Action.DELETE_A:
            return self.image_a_id
        if self.action == self.Action.DELETE_B:
            return self.image_b_id
        return None


def calibration_plot_upload_to(instance: CalibrationRun, filename: str) -> str:
    return f"calibration/{instance.model_name}-run{instance.pk}.png"


class CalibrationRun(models.Model):
    """One calibration of the duplicate thresholds on a sample of the library (manage.py calibrate_duplicates
    or the staff page): precision and recall per threshold, a plot, and the suggested thresholds."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    model_name = models.CharField(max_length=50)
    sample_size = models.PositiveIntegerField()
    target_precision = models.FloatField()
    suggested_near_duplicate = models.FloatField(null=True, blank=True)
    suggested_similar = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    plot = models.FileField(upload_to=calibration_plot_upload_to, max_length=255, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    automatic = models.BooleanField(default=False, help_text="Run by itself for a model without measured defaults.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One automatic calibration per model at a time, whichever worker claims it first (a failed one
            # frees the slot for a later attempt).
            models.UniqueConstraint(
                fields=["model_name"],
                condition=Q(automatic=True) & ~Q(status="failed"),
                name="calibration_one_automatic_per_model",
            )
        ]

    def __str__(self) -> str:
        return f"calibration #{self.pk} ({self.model_name}, {self.status})"


# --- groups ----------------------------------------------------------------------------------------------


class DuplicateGroupQuerySet(models.QuerySet["DuplicateGroup"]):
    def pending(self) -> DuplicateGroupQuerySet:
        return self.filter(status=DuplicateGroup.Status.PENDING)


class DuplicateGroup(models.Model):
    """Images joined by look-alike pairs (duplicates/group_linking.py decides who belongs): the unit of review.

    Pending groups follow the pairs (duplicate_groups_refresh); a resolved or stacked group keeps the members
    it was decided on, as the record its undo works from. `version` counts decisions: a reviewer sends the
    version they saw, and a stale one gets 409 with the current state instead of overwriting a colleague.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending review"
        RESOLVED = "resolved", "Resolved"
        STACKED = "stacked", "Stacked"

    kind = models.CharField(max_length=20, choices=DuplicatePair.Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    suggested_keep = models.ForeignKey(Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    suggestion_reason = models.CharField(max_length=100, blank=True)
    size = models.PositiveIntegerField(default=0, help_text="Members (kept current by the services).")
    max_similarity = models.FloatField(default=0.0, help_text="The strongest pair inside the group.")
    version = models.PositiveIntegerField(default=1)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DuplicateGroupQuerySet.as_manager()

    class Meta:
        ordering = ["-size", "-max_similarity", "id"]
        indexes = [
            models.Index(fields=["kind", "status", "-size", "-max_similarity", "id"], name="duplicate_group_review_idx")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} group #{self.pk} ({self.size} images, {self.status})"


class DuplicateGroupMember(models.Model):
    """One image of a group; `decision` says what the group's resolution did with it."""

    class Decision(models.TextChoices):
        PENDING = "", "Pending"
        KEPT = "kept", "Kept"
        TRASHED = "trashed", "Moved to the trash"

    group = models.ForeignKey(DuplicateGroup, on_delete=models.CASCADE, related_name="members")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="duplicate_memberships")
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group_id", "id"]
        constraints = [models.UniqueConstraint(fields=["group", "image"], name="duplicate_group_member_unique")]

    def __str__(self) -> str:
        return f"#{self.image_id} in group #{self.group_id}"


class DuplicateGroupDecision(ReviewLogEntry):
    """One decision on a whole group, logged with everything its undo needs (pairs' previous statuses, the
    images it moved to the trash). It outlives the group: ids are kept as plain numbers too."""

    class Action(models.TextChoices):
        KEEP = "keep", "Kept the selected, moved the rest to the trash"
        KEEP_ALL = "keep_all", "Kept all (not duplicates)"
        STACK = "stack", "Stacked"

    group = models.ForeignKey(
        DuplicateGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    group_number = models.BigIntegerField(help_text="The group's id at the time.")
    kind = models.CharField(max_length=20, choices=DuplicatePair.Kind.choices)
    action = models.CharField(max_length=10, choices=Action.choices)
    member_ids = models.JSONField(default=list, help_text="The members the reviewer saw and decided on.")
    kept_ids = models.JSONField(default=list)
    trashed_ids = models.JSONField(default=list)
    pair_changes = models.JSONField(default=list, help_text="[pair id, status before] of every pair it changed.")
    suggested = models.BooleanField(default=False, help_text="The reviewer applied the suggestion as it was.")
    previous_status = models.CharField(max_length=10, choices=DuplicateGroup.Status.choices)
    bytes_trashed = models.PositiveBigIntegerField(default=0)
    source = models.CharField(max_length=10, blank=True, help_text="web, api or admin")

    class Meta(ReviewLogEntry.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.get_action_display()} (group #{self.group_number})"


class GroupRefreshLock(models.Model):
    """One row whose update serialises the writers of pending groups across processes and machines (see
    duplicates.services.groups.groups_lock): a row lock on PostgreSQL, the database's write lock on SQLite."""

    taken_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"group refresh lock (last taken {self.taken_at})"
