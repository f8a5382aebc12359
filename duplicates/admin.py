"""Admin for duplicate review: both pictures side by side, evidence, filters, bulk decisions, the log."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from duplicates.models import (
    CalibrationRun,
    DuplicateDecision,
    DuplicateGroup,
    DuplicateGroupMember,
    DuplicatePair,
)
from duplicates.selectors import pairs as pair_selectors
from duplicates.services import pair_review
from gallery.admin import thumbnail_html
from gallery.models import Image


def _side_html(image: Image, *, keep: bool, letter: str) -> str:
    border = "#12805c" if keep else "#e4e7ec"
    return format_html(
        '<div style="display:inline-block;vertical-align:top;margin-right:8px;padding:4px;border:2px solid {};'
        'border-radius:6px;text-align:center"><a href="{}">{}</a><br>{} #{} · {} x {}{}</div>',
        border,
        reverse("gallery:image-detail", args=[image.pk]),
        thumbnail_html(image, 140),
        letter,
        image.pk,
        image.width,
        image.height,
        format_html(' <b style="color:{}">keep</b>', "#12805c") if keep else "",
    )


@admin.register(DuplicatePair)
class DuplicatePairAdmin(admin.ModelAdmin):
    list_display = ["id", "pictures", "similarity_display", "kind", "review_status", "evidence_summary", "reviewed_by"]
    list_display_links = ["id"]
    list_filter = ["kind", "review_status", "embedding_model"]
    search_fields = ["image_a__original_name", "image_b__original_name", "=image_a__id", "=image_b__id"]
    list_select_related = ["image_a", "image_b", "reviewed_by"]
    readonly_fields = [
        "pictures",
        "image_a",
        "image_b",
        "similarity",
        "kind",
        "review_status",
        "reviewed_by",
        "reviewed_at",
        "evidence",
        "embedding_model",
        "created_at",
        "detected_at",
    ]
    exclude = []
    actions = ["mark_not_duplicate", "mark_confirmed", "delete_suggested"]
    list_per_page = 25

    def get_queryset(self, request: HttpRequest) -> QuerySet[DuplicatePair]:
        return super().get_queryset(request).defer("image_a__embedding", "image_b__embedding")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a dropped pending pair would just come back on the next scan
        return actions

    @admin.display(description="A · B (suggested keep outlined)")
    def pictures(self, pair: DuplicatePair) -> str:
        keep = pair_selectors.keep_suggestion(pair).keep.id
        return format_html(
            "{}{}",
            _side_html(pair.image_a, keep=keep == pair.image_a_id, letter="A"),
            _side_html(pair.image_b, keep=keep == pair.image_b_id, letter="B"),
        )

    @admin.display(description="Cosine", ordering="similarity")
    def similarity_display(self, pair: DuplicatePair) -> str:
        return f"{pair.similarity:.3f}"

    @admin.display(description="Evidence")
    def evidence_summary(self, pair: DuplicatePair) -> str:
        evidence = pair.evidence or {}
        parts = [
            ("pHash Δ", evidence.get("phash_distance")),
            ("geometry inliers", evidence.get("geometric_inliers")),
            ("time gap s", evidence.get("time_gap_seconds")),
            ("same camera", evidence.get("same_camera")),
        ]
        shown = [(label, value) for label, value in parts if value is not None]
        reason = pair_selectors.keep_suggestion(pair).reason
        return format_html(
            "{}<br><span style='color:#667085'>keep: {}</span>",
            format_html_join(", ", "{}: {}", shown) or "—",
            reason,
        )

    def _resolve_each(self, request: HttpRequest, queryset: QuerySet[DuplicatePair], action: str) -> int:
        done = 0
        for pair in queryset:
            try:
                pair_review.duplicate_pair_resolve(pair=pair, action=action, user=request.user, source="admin")
                done += 1
            except pair_review.ReviewError as error:
                self.message_user(request, f"{pair}: {error.message}", messages.WARNING)
        return done

    @admin.action(description="Not a duplicate: keep both (remembered)")
    def mark_not_duplicate(self, request: HttpRequest, queryset: QuerySet[DuplicatePair]) -> None:
        done = self._resolve_each(request, queryset, pair_review.ResolveAction.NOT_DUPLICATE)
        self.message_user(request, f"{done} pair(s) marked as not duplicates.", messages.SUCCESS)

    @admin.action(description="Confirm as duplicates (keep both for now)")
    def mark_confirmed(self, request: HttpRequest, queryset: QuerySet[DuplicatePair]) -> None:
        done = self._resolve_each(request, queryset, pair_review.ResolveAction.CONFIRM)
        self.message_user(request, f"{done} pair(s) confirmed as duplicates.", messages.SUCCESS)

    @admin.action(description="Move the image the suggestion ranks lower to the trash (asks first; undoable)")
    def delete_suggested(self, request: HttpRequest, queryset: QuerySet[DuplicatePair]) -> HttpResponse | None:
        pairs = list(queryset.select_related("image_a", "image_b"))
        if request.POST.get("confirmed") != "yes":
            reviews = pair_selectors.pair_reviews(pairs)
            return TemplateResponse(
                request,
                "duplicates/admin_confirm_delete.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Move the lower-ranked images to the trash?",
                    "reviews": reviews,
                    "opts": self.model._meta,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        deleted = set()
        for pair in pairs:
            if pair.image_a_id in deleted or pair.image_b_id in deleted:
                continue  # one image of it went with an earlier pair of the selection: this pair is gone too
            try:
                decision = pair_review.duplicate_pair_resolve(
                    pair=pair, action=pair_review.ResolveAction.KEEP_SUGGESTED, user=request.user, source="admin"
                )
            except pair_review.ReviewError as error:
                self.message_user(request, f"{pair}: {error.message}", messages.WARNING)
                continue
            deleted.add(decision.deleted_image_id)
        self.message_user(
            request, f"Moved {len(deleted)} image(s) to the trash (restorable from the Trash page).", messages.SUCCESS
        )
        return None


@admin.register(DuplicateDecision)
class DuplicateDecisionAdmin(admin.ModelAdmin):
    list_display = ["id", "at", "user", "action", "pair_link", "previous_status", "new_status", "source", "undone_at"]
    list_filter = ["action", "source", ("undone_at", admin.EmptyFieldListFilter)]
    search_fields = ["=image_a_id", "=image_b_id", "image_a_sha256", "image_b_sha256", "deleted_name"]
    list_select_related = ["user", "undone_by"]
    readonly_fields = [field.name for field in DuplicateDecision._meta.fields]
    actions = ["undo"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DuplicateDecision | None = None) -> bool:
        return False  # the log is the record of who decided what

    @admin.display(description="Pair")
    def pair_link(self, decision: DuplicateDecision) -> str:
        label = f"#{decision.image_a_id} ~ #{decision.image_b_id}"
        if decision.pair_id is None:
            return label
        return format_html('<a href="{}">{}</a>', reverse("duplicates:pair-detail", args=[decision.pair_id]), label)

    @admin.action(description="Undo the selected decisions (each must be its pair's latest; not deletions)")
    def undo(self, request: HttpRequest, queryset: QuerySet[DuplicateDecision]) -> None:
        done = 0
        for decision in queryset.order_by("-at", "-id"):  # newest first, so a pair's later decision goes first
            try:
                pair_review.duplicate_decision_undo(decision=decision, user=request.user)
                done += 1
            except pair_review.ReviewError as error:
                self.message_user(request, f"#{decision.pk}: {error.message}", messages.WARNING)
        self.message_user(request, f"{done} decision(s) undone.", messages.SUCCESS)


@admin.register(CalibrationRun)
class CalibrationRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "model_name",
        "sample_size",
        "target_precision",
        "suggested_near_duplicate",
        "suggested_similar",
        "created_at",
    ]
    list_filter = ["status", "model_name"]
    readonly_fields = ["plot_image", *[field.name for field in CalibrationRun._meta.fields]]
    exclude = ["plot"]

    @admin.display(description="Plot")
    def plot_image(self, run: CalibrationRun) -> str:
        if not run.plot:
            return "—"
        return format_html(
            '<img src="{}" style="max-width:900px;width:100%" alt="">',
            reverse("duplicates:calibration-plot", args=[run.pk]),
        )

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """New runs start from the calibration page (sample size, target precision, a background task)."""
        return HttpResponseRedirect(reverse("duplicates:calibration"))


class GroupSizeFilter(admin.SimpleListFilter):
    title = "size"
    parameter_name = "size"
    BUCKETS = {"2": (2, 2), "3-5": (3, 5), "6-10": (6, 10), "11+": (11, None)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(key, f"{key} images") for key in self.BUCKETS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DuplicateGroup]) -> QuerySet[DuplicateGroup]:
        bucket = self.BUCKETS.get(self.value() or "")
        if bucket is None:
            return queryset
        low, high = bucket
        queryset = queryset.filter(size__gte=low)
        return queryset if high is None else queryset.filter(size__lte=high)


class DuplicateGroupMemberInline(admin.TabularInline):
    """The group's members as they are (read-only: decisions go through the review card or the API)."""

    model = DuplicateGroupMember
    fields = ["picture", "image_link", "decision", "added_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DuplicateGroupMember]:
        return super().get_queryset(request).select_related("image").defer("image__embedding")

    def has_add_permission(self, request: HttpRequest, obj: DuplicateGroup | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DuplicateGroup | None = None) -> bool:
        return False

    @admin.display(description="Picture")
    def picture(self, member: DuplicateGroupMember) -> str:
        return thumbnail_html(member.image, 96)

    @admin.display(description="Image")
    def image_link(self, member: DuplicateGroupMember) -> str:
        image = member.image
        return format_html(
            '<a href="{}">#{} {}</a> · {} x {}',
            reverse("gallery:image-detail", args=[image.pk]),
            image.pk,
            image.original_name,
            image.width,
            image.height,
        )


@admin.register(DuplicateGroup)
class DuplicateGroupAdmin(admin.ModelAdmin):
    """Groups for staff to find and inspect; deciding happens on the review card (linked) or through the API."""

    list_display = ["id", "kind", "status", "size", "max_similarity", "suggested_keep_id", "review_link", "updated_at"]
    list_filter = ["kind", "status", GroupSizeFilter]
    search_fields = ["=id", "=members__image__id"]
    readonly_fields = [field.name for field in DuplicateGroup._meta.fields] + ["review_link"]
    inlines = [DuplicateGroupMemberInline]
    ordering = ["-size", "-max_similarity", "id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DuplicateGroup | None = None) -> bool:
        return False  # a group is derived from its pairs (pending) or the record of a decision

    def has_change_permission(self, request: HttpRequest, obj: DuplicateGroup | None = None) -> bool:
        return False

    @admin.display(description="Review")
    def review_link(self, group: DuplicateGroup) -> str:
        return format_html('<a href="{}?group={}">review card</a>', reverse("duplicates:review"), group.pk)
