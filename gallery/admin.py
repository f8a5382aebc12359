"""Admin for the image library: thumbnails, filters, and actions that go through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from gallery.models import Image
from pipeline.services import image_delete, image_retry


def thumbnail_html(image: Image, size: int = 96) -> str:
    if not image.thumbnail:
        return "—"
    return format_html(
        '<img src="{}" style="max-width:{}px;max-height:{}px;border-radius:4px" alt="">',
        reverse("gallery:image-thumbnail", args=[image.pk]),
        size,
        size,
    )


@admin.register(Image)
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
    list_filter = ["status", "reason_code", "rating", "format", "embedding_model"]
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
        "embedding_model",
        "embedded_at",
        "embed_attempts",
        "claimed_until",
        "created_at",
        "updated_at",
    ]
    exclude = ["claim_token"]
    actions = ["retry_embedding", "delete_with_files"]
    list_per_page = 50

    @admin.display(description="Image")
    def preview(self, image: Image) -> str:
        return thumbnail_html(image, 64)

    @admin.display(description="Preview")
    def preview_large(self, image: Image) -> str:
        return thumbnail_html(image, 320)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion goes through the service, which removes the files
        return actions

    @admin.action(description="Queue selected rejected/failed images for embedding again")
    def retry_embedding(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        images = queryset.filter(status__in=[Image.Status.REJECTED, Image.Status.FAILED])
        count = 0
        for image in images:
            image_retry(image=image)
            count += 1
        self.message_user(request, f"{count} image(s) queued again.", messages.SUCCESS)

    @admin.action(description="Delete selected images and their files", permissions=["delete"])
    def delete_with_files(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        count = 0
        for image in queryset:
            image_delete(image=image)
            count += 1
        self.message_user(request, f"Deleted {count} image(s) and their files.", messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj: Image) -> None:
        image_delete(image=obj)
