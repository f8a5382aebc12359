"""Near-duplicate and similar pairs found among the library's images, and the review of them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from gallery.models import Image


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
    similarity = models.FloatField()
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    evidence = models.JSONField(default=dict, blank=True)
    review_status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-similarity", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image_a", "image_b"], name="duplicate_pair_unique"),
            models.CheckConstraint(condition=Q(image_a__lt=models.F("image_b")), name="duplicate_pair_ordered"),
        ]

    def __str__(self) -> str:
        return f"#{self.image_a_id} ~ #{self.image_b_id} ({self.similarity:.3f})"
