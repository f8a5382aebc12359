"""Staff pages for pairs, the evidence behind the groups: review them side by side, resolve and undo, the
decision log (group decisions above pair decisions), and the re-scan that detects the library's pairs again."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.access import staff_required
from core.query_params import query_int
from core.redirects import redirect_back
from duplicates.forms import ResolveForm, ReviewFilterForm
from duplicates.models import DuplicateDecision, DuplicatePair
from duplicates.selectors import detection as detection_selectors
from duplicates.selectors import groups as group_selectors
from duplicates.selectors import pairs as pair_selectors
from duplicates.selectors import thresholds as threshold_selectors
from duplicates.services.detection import duplicates_scan_schedule
from duplicates.services.pair_review import (
    ResolveAction,
    ReviewError,
    duplicate_decision_undo,
    duplicate_pair_resolve,
    duplicate_pair_undo_latest,
)

REVIEW_PAGE_SIZE = 20
DECISIONS_PAGE_SIZE = 50


@staff_required
def pair_review(request: HttpRequest) -> HttpResponse:
    """Pairs one by one (the evidence behind the groups)."""
    filters = ReviewFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    kind = cleaned.get("kind") or DuplicatePair.Kind.NEAR_DUPLICATE
    status = cleaned.get("status") or DuplicatePair.ReviewStatus.PENDING
    page = Paginator(pair_selectors.duplicate_pair_list(status=status, kind=kind), REVIEW_PAGE_SIZE).get_page(
        query_int(request.GET, "page", default=1, minimum=1)
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "duplicates/pairs.html",
        {
            "page": page,
            "reviews": pair_selectors.pair_reviews(list(page.object_list)),
            "counts": pair_selectors.duplicate_pair_counts(),
            "kind": kind,
            "status": status,
            "bands": threshold_selectors.duplicate_bands(),
            "geometry": detection_selectors.geometric_verification_enabled(),
            "query_string": query.urlencode(),
            "here": request.get_full_path(),
        },
    )


@staff_required
def pair_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pair = get_object_or_404(pair_selectors.duplicate_pair_list(status="all"), pk=pk)
    return render(
        request,
        "duplicates/pair_detail.html",
        {
            "review": pair_selectors.pair_reviews([pair])[0],
            "decisions": pair_selectors.decision_list(pair_id=pair.pk),
            "bands": threshold_selectors.duplicate_bands(),
            "here": request.get_full_path(),
        },
    )


@staff_required
@require_POST
def pair_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    pair = get_object_or_404(DuplicatePair, pk=pk)
    form = ResolveForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(f"Choose an action: {', '.join(ResolveAction.ALL)}.")
    try:
        decision = duplicate_pair_resolve(
            pair=pair, action=form.cleaned_data["action"], user=request.user, source="web"
        )
    except ReviewError as error:
        messages.error(request, error.message)
        return redirect_back(request, reverse("duplicates:pairs"))
    if decision.is_delete:
        kept = decision.image_b_id if decision.deleted_image_id == decision.image_a_id else decision.image_a_id
        messages.success(
            request,
            f"Moved #{decision.deleted_image_id} ({decision.deleted_name}) to the trash and kept #{kept}.",
        )
        return redirect_back(request, reverse("duplicates:pairs"))
    messages.success(request, f"#{pair.image_a_id} ~ #{pair.image_b_id}: {decision.get_action_display().lower()}.")
    return redirect_back(request, reverse("duplicates:pairs"))


def _undone(request: HttpRequest, decision: DuplicateDecision) -> None:
    messages.success(
        request,
        f"Undone: {decision.get_action_display().lower()} on #{decision.image_a_id} ~ #{decision.image_b_id} "
        f"(back to {DuplicatePair.ReviewStatus(decision.previous_status).label.lower()}).",
    )


@staff_required
@require_POST
def pair_undo(request: HttpRequest, pk: int) -> HttpResponse:
    pair = get_object_or_404(DuplicatePair, pk=pk)
    try:
        _undone(request, duplicate_pair_undo_latest(pair=pair, user=request.user))
    except ReviewError as error:
        messages.error(request, error.message)
    return redirect_back(request, reverse("duplicates:pair-detail", args=[pair.pk]))


@staff_required
@require_POST
def decision_undo(request: HttpRequest, pk: int) -> HttpResponse:
    decision = get_object_or_404(DuplicateDecision, pk=pk)
    try:
        _undone(request, duplicate_decision_undo(decision=decision, user=request.user))
    except ReviewError as error:
        messages.error(request, error.message)
    return redirect_back(request, reverse("duplicates:decisions"))


@staff_required
def decisions(request: HttpRequest) -> HttpResponse:
    """The log: group decisions (each with its undo) above the pair decisions, each list paged on its own."""
    page = Paginator(pair_selectors.decision_list(), DECISIONS_PAGE_SIZE).get_page(
        query_int(request.GET, "page", default=1, minimum=1)
    )
    groups = Paginator(group_selectors.group_decision_list(), DECISIONS_PAGE_SIZE).get_page(
        query_int(request.GET, "gpage", default=1, minimum=1)
    )
    query = request.GET.copy()
    query.pop("page", None)
    group_query = request.GET.copy()
    group_query.pop("gpage", None)
    return render(
        request,
        "duplicates/decisions.html",
        {
            "page": page,
            "group_page": groups,
            "undoable": group_selectors.undoable_group_decisions(decisions=list(groups.object_list)),
            "query_string": query.urlencode(),
            "group_query_string": group_query.urlencode(),
            "here": request.get_full_path(),
        },
    )


@staff_required
@require_POST
def scan(request: HttpRequest) -> HttpResponse:
    duplicates_scan_schedule(requested_by=request.user.get_username())
    messages.success(request, "A re-scan of the whole library is queued; pairs update as it runs.")
    return redirect_back(request, reverse("duplicates:pairs"))
