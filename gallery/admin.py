"""Admin for the image library: thumbnails, filters and the fields of an image (registered, with the pipeline's
actions, by pipeline.admin)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from gallery.models import Image
from gallery.services import image_delete


def thumbnail_html(image: Image, size: int = 96) -> str:
    if not image.thumbnail:
        return "—"
    return format_html(
        '<img src="{}" style="max-width:{}px;max-height:{}px;border-radius:4px" alt="">',
        reverse("gallery:image-thumbnail", args=[image.pk]),
        size,
        size,
    )


class BlurredCopyFilter(admin.SimpleListFilter):
    """Rejected blurry uploads that the copy check named a copy of a library image (duplicates' copy check)."""

    title = "blurred copy of a library image"
    parameter_name = "blurred_copy"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Image]) -> QuerySet[Image]:
        if self.value() == "yes":
            return queryset.filter(copy_of__isnull=False)
        if self.value() == "no":
            return queryset.filter(copy_of__isnull=True)
        return queryset


# Registered by pipeline.admin, as a subclass with the actions that re-queue, trash and delete through the pipeline.
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "preview",
        "original_name",
        "status",
        "reason_code",
        "rating",
        "width",
        "height",
        "created_at",
    ]
    list_display_links = ["id", "preview", "original_name"]
    list_filter = ["status", "reason_code", BlurredCopyFilter, "rating", "format", "embedding_model"]
    search_fields = ["original_name", "sha256", "camera_model"]
    readonly_fields = [
        "preview_large",
        "file",
        "thumbnail",
        "sha256",
        "width",
        "height",
        "format",
        "file_size",
        "quality_scores",
        "quality_score",
        "quality_threshold",
        "copy_of_link",
        "copy_similarity",
        "copy_checked_at",
        "embedding_model",
        "embedded_at",
        "embed_attempts",
        "claimed_until",
        "created_at",
        "updated_at",
    ]
    exclude = ["claim_token", "copy_of"]  # copy_of is the copy check's finding: shown as copy_of_link
    list_per_page = 50

    @admin.display(description="Image")
    def preview(self, image: Image) -> str:
        return thumbnail_html(image, 64)

    @admin.display(description="Preview")
    def preview_large(self, image: Image) -> str:
        return thumbnail_html(image, 320)

    @admin.display(description="Blurred copy of")
    def copy_of_link(self, image: Image) -> str:
        """The library image the copy check named, linked to its admin page (a thumbnail to compare by eye)."""
        original = image.copy_of
        if original is None:
            return "—"
        return format_html(
            '<a href="{}">{}<br>{}</a>',
            reverse("admin:gallery_image_change", args=[original.pk]),
            thumbnail_html(original, 160),
            str(original),
        )

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion goes through the service, which removes the files
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Image | None = None) -> bool:
        """Deleted for good only from the trash, like everywhere else: a library image is moved there first."""
        return super().has_delete_permission(request, obj) and (obj is None or obj.trashed_at is not None)

    def delete_model(self, request: HttpRequest, obj: Image) -> None:
        """Rows and files together (the admin's own delete would leave the files behind)."""
        image_delete(image=obj)
