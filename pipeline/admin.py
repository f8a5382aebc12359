"""The image admin with the pipeline's actions: queue rejected or failed images again, move images to the trash,
and delete (from the trash only) through the service that also tells every process's search view."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from gallery import admin as gallery_admin
from gallery.models import Image
from pipeline.services import image_retry, image_trash


@admin.register(Image)
class ImageAdmin(gallery_admin.ImageAdmin):
    actions = ["retry_embedding", "move_to_trash"]

    @admin.action(description="Queue selected rejected/failed images for embedding again")
    def retry_embedding(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        images = queryset.filter(status__in=[Image.Status.REJECTED, Image.Status.FAILED])
        count = 0
        for image in images:
            image_retry(image=image)
            count += 1
        self.message_user(request, f"{count} image(s) queued again.", messages.SUCCESS)

    @admin.action(description="Move selected images to the trash")
    def move_to_trash(self, request: HttpRequest, queryset: QuerySet[Image]) -> None:
        images = list(queryset.filter(trashed_at__isnull=True))
        for image in images:
            image_trash(image=image, user=request.user)
        message = f"Moved {len(images)} image(s) to the trash (restore or delete them for good there)."
        self.message_user(request, message, messages.SUCCESS)
