"""REST API for the trash (staff): list it, restore one or many, purge one, empty it."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from duplicates.api.trash_serializers import (
    TrashContentsSerializer,
    TrashedImageSerializer,
    TrashEmptySerializer,
    TrashRestoreResultSerializer,
    TrashRestoreSerializer,
)
from duplicates.services.trash import images_purge, images_restore, trash_empty_schedule
from gallery import selectors as gallery_selectors
from gallery.models import Image


class TrashViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Images moved to the trash (review, the image page's Delete): restore them, one or many, or purge them for
    good, one or all (staff only)."""

    serializer_class = TrashedImageSerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self) -> QuerySet[Image]:
        return gallery_selectors.trash_list()

    @extend_schema(request=None, responses={200: TrashedImageSerializer})
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        """Back in the library, search and its duplicate groups (its confirmed pairs are pending again)."""
        image = self.get_object()
        images_restore(images=[image], reopen=True)
        image.refresh_from_db()
        return Response(TrashedImageSerializer(image, context={"request": request}).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def purge(self, request: Request, pk: str | None = None) -> Response:
        """Delete for good: the row, its pairs and (once committed) its files. Cannot be undone."""
        image = self.get_object()
        with transaction.atomic():
            images_purge(images=[image])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=TrashRestoreSerializer,
        responses={200: TrashRestoreResultSerializer},
        operation_id="api_trash_restore_many_create",
    )
    @action(detail=False, methods=["post"], url_path="restore")
    def restore_many(self, request: Request) -> Response:
        """Restore several images at once (`{"ids": [...]}`); ids not in the trash are listed and left alone."""
        form = TrashRestoreSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ids = list(dict.fromkeys(form.validated_data["ids"]))
        images = list(self.get_queryset().filter(pk__in=ids))
        if images:
            images_restore(images=images, reopen=True)
        restored = {image.pk for image in images}
        missing = [pk for pk in ids if pk not in restored]
        return Response({"restored": [pk for pk in ids if pk in restored], "not_in_trash": missing})

    @extend_schema(request=TrashEmptySerializer, responses={202: TrashContentsSerializer})
    @action(detail=False, methods=["post"])
    def empty(self, request: Request) -> Response:
        """Empty the trash: the background worker purges for good (rows, pairs, files) every image in it now, or
        those trashed up to `trashed_until`; the answer (202) counts them. Cannot be undone."""
        form = TrashEmptySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        until = form.validated_data.get("trashed_until") or timezone.now()
        queued = trash_empty_schedule(trashed_until=until)
        return Response(TrashContentsSerializer(queued).data, status=status.HTTP_202_ACCEPTED)
