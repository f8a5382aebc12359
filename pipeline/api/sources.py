"""REST API for library sources (staff only): list, register, inspect with the latest scan's progress, scan now,
remove."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from gallery.models import LibrarySource, SourceFileMove, SourceReach, SourceScan
from gallery.source_moves import source_file_move_undo
from gallery.source_reach import source_reach_check_due
from pipeline.selectors import library_sources_with_latest_scan
from pipeline.sources import library_source_create, library_source_delete, library_source_scan_request


class SourceScanSerializer(serializers.ModelSerializer):
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="Seconds left at the rate so far.")
    percent = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = SourceScan
        fields = [
            "id",
            "status",
            "message",
            "created_at",
            "started_at",
            "finished_at",
            "files_total",
            "files_seen",
            "percent",
            "eta_seconds",
            "unchanged",
            "accepted",
            "known_content",
            "rejected",
            "changed",
            "moved",
            "missing",
            "returned",
            "skipped",
            "removed",
            "reasons",
            "problems",
        ]
        read_only_fields = fields


class SourceReachSerializer(serializers.ModelSerializer):
    stale = serializers.BooleanField(
        read_only=True, help_text="Not checked for 10 minutes: the machine may have been fixed or stopped since."
    )

    class Meta:
        model = SourceReach
        fields = ["machine", "role", "readable", "error", "checked_at", "stale"]
        read_only_fields = fields


class LibrarySourceSerializer(serializers.ModelSerializer):
    latest_scan = serializers.SerializerMethodField()
    machines = SourceReachSerializer(
        many=True,
        read_only=True,
        default=list,
        help_text="Whether each machine's web or worker processes could read the folder, checked in the last "
        "6 hours. The source is offline only when none of them can.",
    )
    files_present = serializers.IntegerField(read_only=True, source="file_count", default=None)
    files_missing = serializers.IntegerField(read_only=True, source="missing_count", default=None)

    class Meta:
        model = LibrarySource
        fields = [
            "id",
            "name",
            "root",
            "writable",
            "state",
            "state_message",
            "state_changed_at",
            "last_scanned_at",
            "created_at",
            "files_present",
            "files_missing",
            "latest_scan",
            "machines",
        ]
        read_only_fields = ["state", "state_message", "state_changed_at", "last_scanned_at", "created_at", "writable"]

    @extend_schema(responses=SourceScanSerializer)
    def get_latest_scan(self, source: LibrarySource) -> dict[str, Any] | None:
        scan = getattr(source, "latest_scan", None)
        return SourceScanSerializer(scan).data if scan is not None else None


class SourceFileMoveSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceFileMove
        fields = ["id", "action", "status", "from_path", "to_path", "code", "message", "image", "created_at"]
        read_only_fields = fields


class LibrarySourceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    root = serializers.CharField(max_length=1024, help_text="Absolute path of the folder on the server.")
    writable = serializers.BooleanField(
        default=False,
        help_text="Trash moves the file into .imgsim-trash/ inside the folder, restore moves it back, purge deletes.",
    )


class LibrarySourceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Folders read in place. POST registers one and queues its first scan (400 for a path that is not a
    readable folder, 409 for one inside, around or equal to another source's)."""

    permission_classes = [permissions.IsAdminUser]
    serializer_class = LibrarySourceSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[LibrarySource]:
        return LibrarySource.objects.all()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        sources = library_sources_with_latest_scan()
        return Response(LibrarySourceSerializer(sources, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        source = self.get_object()
        source_reach_check_due(role=SourceReach.Role.WEB, sources=[source])  # this web machine's own look
        (source,) = library_sources_with_latest_scan(pk=source.pk)
        return Response(LibrarySourceSerializer(source).data)

    @extend_schema(request=LibrarySourceCreateSerializer, responses={201: LibrarySourceSerializer})
    def create(self, request: Request) -> Response:
        form = LibrarySourceCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        source = library_source_create(**form.validated_data, created_by=request.user)
        (source,) = library_sources_with_latest_scan(pk=source.pk)
        return Response(LibrarySourceSerializer(source).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: LibrarySource) -> None:
        library_source_delete(source=instance)

    @extend_schema(request=None, responses={202: SourceScanSerializer})
    @action(detail=True, methods=["post"])
    def scan(self, request: Request, pk: str | None = None) -> Response:
        """Scan now (or the scan already waiting or running)."""
        scan = library_source_scan_request(source=self.get_object(), requested_by=request.user)
        return Response(SourceScanSerializer(scan).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=SourceFileMoveSerializer(many=True))
    @action(detail=True, methods=["get"])
    def moves(self, request: Request, pk: str | None = None) -> Response:
        """The newest 200 file moves in this source (a writable one): done, failed with why, or undone."""
        moves = SourceFileMove.objects.filter(source=self.get_object())[:200]
        return Response(SourceFileMoveSerializer(moves, many=True).data)

    @extend_schema(request=None, responses=SourceFileMoveSerializer)
    @action(detail=True, methods=["post"], url_path=r"moves/(?P<move_id>[0-9]+)/undo")
    def undo_move(self, request: Request, pk: str | None = None, move_id: str | None = None) -> Response:
        """Undo a done move (a file moved into quarantine goes back, and the other way); 409 with why not."""
        move = get_object_or_404(SourceFileMove, pk=int(move_id or 0), source=self.get_object())
        source_file_move_undo(move=move, by=request.user)
        move.refresh_from_db()
        return Response(SourceFileMoveSerializer(move).data)
