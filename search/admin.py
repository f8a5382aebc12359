"""Admin for index builds, with a "Rebuild now" button, and the log of applied thresholds (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from gallery.models import Image
from search import selectors
from search.models import IndexBuild, ThresholdSetting
from search.services.index_lifecycle import index_rebuild_schedule


@admin.register(IndexBuild)
class IndexBuildAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "model_name", "kind", "vector_count", "index_dim", "build_seconds", "created_at"]
    list_filter = ["status", "model_name", "kind"]
    readonly_fields = [field.name for field in IndexBuild._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        rebuild = self.admin_site.admin_view(require_POST(self.rebuild_view))
        return [path("rebuild/", rebuild, name="search_indexbuild_rebuild"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> object:
        extra_context = {**(extra_context or {}), "index_status": selectors.index_status()}
        return super().changelist_view(request, extra_context)

    def rebuild_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if not Image.objects.searchable().exists():
            self.message_user(request, "There are no embedded images to index yet.", messages.WARNING)
        elif index_rebuild_schedule(requested_by=request.user.get_username()):
            self.message_user(request, "Rebuild queued; the worker builds it in the background.", messages.SUCCESS)
        else:
            self.message_user(request, "A rebuild is already running.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:search_indexbuild_changelist"))


@admin.register(ThresholdSetting)
class ThresholdSettingAdmin(admin.ModelAdmin):
    """The log of applied thresholds: they are applied and undone on the Calibrate page (or the API)."""

    list_display = ["id", "model_name", "near_duplicate", "similar", "match", "origin", "applied_by", "applied_at"]
    list_filter = ["model_name", "origin"]
    readonly_fields = [field.name for field in ThresholdSetting._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
