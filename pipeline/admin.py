"""The image admin with the pipeline's actions: queue rejected or failed images again, move images to the trash,
and delete (from the trash only) through the service that also tells every process's search view; the library
sources' admin (register a folder, scan it now, its scans and files, the machines that cannot read it)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.timesince import timesince

from core.errors import ServiceError
from gallery import admin as gallery_admin
from gallery.models import Image, LibrarySource, SourceFile, SourceReach, SourceScan
from pipeline.services import image_retry, image_trash
from pipeline.sources import (
    library_source_create,
    library_source_delete,
    library_source_root_check,
    library_source_scan_request,
)


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


class LibrarySourceAdminForm(forms.ModelForm):
    """The admin's add form checks the folder as every other entry point does (pipeline.sources)."""

    class Meta:
        model = LibrarySource
        fields = ["name", "root", "writable"]

    def clean_root(self) -> str:
        try:
            return library_source_root_check(root=self.cleaned_data["root"], exclude_pk=self.instance.pk)
        except ServiceError as error:
            raise forms.ValidationError(error.message, code=error.code) from None


class SourceScanInline(admin.TabularInline):
    model = SourceScan
    fields = [
        "created_at",
        "status",
        "files_seen",
        "files_total",
        "accepted",
        "rejected",
        "moved",
        "missing",
        "message",
    ]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SourceScan]:
        return super().get_queryset(request).order_by("-created_at", "-id")


class SourceReachInline(admin.TabularInline):
    """Whether each machine's web or worker processes could read the folder lately (gallery.source_reach)."""

    model = SourceReach
    fields = ["machine", "role", "readable", "error", "checked_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name = "machine"
    verbose_name_plural = "Machines that looked at the folder in the last 6 hours"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SourceReach]:
        return super().get_queryset(request).kept().order_by("readable", "machine", "role")


@admin.register(LibrarySource)
class LibrarySourceAdmin(admin.ModelAdmin):
    """Register a folder (its first scan is queued), see its scans, scan it now; removing one forgets its
    images that no other file or upload holds (the folder itself is never touched)."""

    form = LibrarySourceAdminForm
    list_display = ["name", "root", "state", "cannot_read", "last_scanned_at", "writable"]
    readonly_fields = ["state", "state_message", "state_changed_at", "last_scanned_at", "created_by", "created_at"]
    fields = [
        "name",
        "root",
        "state",
        "state_message",
        "state_changed_at",
        "last_scanned_at",
        "created_by",
        "created_at",
    ]
    inlines = [SourceReachInline, SourceScanInline]
    actions = ["scan_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LibrarySource]:
        failing = SourceReach.objects.kept().filter(readable=False).order_by("machine", "role")
        return super().get_queryset(request).prefetch_related(Prefetch("reach", failing, to_attr="failing_reach"))

    @admin.display(description="Cannot read it")
    def cannot_read(self, obj: LibrarySource) -> str:
        """The machines whose last look at the folder failed (within SourceReach.KEPT), with why and when."""
        return "; ".join(
            f"{row.reader}: {row.error}, checked {timesince(row.checked_at)} ago"
            for row in obj.failing_reach  # type: ignore[attr-defined]
        )

    def get_inlines(self, request: HttpRequest, obj: LibrarySource | None) -> list[type[admin.TabularInline]]:
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request: HttpRequest, obj: LibrarySource | None = None) -> list[str]:
        """The folder of a registered source is fixed: its files' paths are relative to it."""
        return [*self.readonly_fields, "root"] if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: LibrarySource, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = library_source_create(name=obj.name, root=obj.root, writable=obj.writable, created_by=request.user)
        obj.pk = created.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: LibrarySource) -> None:
        library_source_delete(source=obj)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through the service
        return actions

    @admin.action(description="Scan selected sources now")
    def scan_now(self, request: HttpRequest, queryset: QuerySet[LibrarySource]) -> None:
        for source in queryset:
            library_source_scan_request(source=source, requested_by=request.user)
        self.message_user(request, f"{queryset.count()} scan(s) queued.", messages.SUCCESS)


@admin.register(SourceFile)
class SourceFileAdmin(admin.ModelAdmin):
    """Read-only: what the scans saw, file by file."""

    list_display = ["relative_path", "source", "state", "size", "image", "missing_since", "reason_code"]
    list_filter = ["source", "state", "reason_code"]
    search_fields = ["relative_path", "sha256"]
    list_select_related = ["source", "image"]
    raw_id_fields = ["image"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SourceFile | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SourceFile | None = None) -> bool:
        return False
