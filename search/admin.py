"""Admin for index builds."""

from django.contrib import admin

from search.models import IndexBuild


@admin.register(IndexBuild)
class IndexBuildAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "model_name", "kind", "vector_count", "index_dim", "build_seconds", "created_at"]
    list_filter = ["status", "model_name", "kind"]
    readonly_fields = [field.name for field in IndexBuild._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
