"""Web pages for staff: review pairs side by side, the decision log, re-scan and threshold calibration."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from core.access import staff_required
from core.errors import ServiceError
from core.query_params import query_int
from duplicates import group_selectors, selectors
from duplicates.forms import CalibrationForm, ResolveForm, ReviewFilterForm, ThresholdsApplyForm, ThresholdsUndoForm
from duplicates.models import CalibrationRun, DuplicateDecision, DuplicatePair
from duplicates.services.calibration import calibration_run_create
from duplicates.services.detection import duplicates_scan_schedule
from duplicates.services.review import (
    ResolveAction,
    ReviewError,
    duplicate_decision_undo,
    duplicate_pair_resolve,
    duplicate_pair_undo_latest,
)
from duplicates.services.thresholds import calibration_thresholds_apply, calibration_thresholds_propose, thresholds_undo

REVIEW_PAGE_SIZE = 20
DECISIONS_PAGE_SIZE = 50


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    """To the page the form was on (only ever on this site), else the fallback."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback)


@staff_required
def pair_review(request: HttpRequest) -> HttpResponse:
    """Pairs one by one (the evidence behind the groups)."""
    filters = ReviewFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    kind = cleaned.get("kind") or DuplicatePair.Kind.NEAR_DUPLICATE
    status = cleaned.get("status") or DuplicatePair.ReviewStatus.PENDING
    page = Paginator(selectors.duplicate_pair_list(status=status, kind=kind), REVIEW_PAGE_SIZE).get_page(
        query_int(request.GET, "page", default=1, minimum=1)
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "duplicates/pairs.html",
        {
            "page": page,
            "reviews": selectors.pair_reviews(list(page.object_list)),
            "counts": selectors.duplicate_pair_counts(),
            "kind": kind,
            "status": status,
            "bands": selectors.duplicate_bands(),
            "geometry": selectors.geometric_verification_enabled(),
            "query_string": query.urlencode(),
            "here": request.get_full_path(),
        },
    )


@staff_required
def pair_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pair = get_object_or_404(selectors.duplicate_pair_list(status="all"), pk=pk)
    return render(
        request,
        "duplicates/pair_detail.html",
        {
            "review": selectors.pair_reviews([pair])[0],
            "decisions": selectors.decision_list(pair_id=pair.pk),
            "bands": selectors.duplicate_bands(),
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
        return _back(request, reverse("duplicates:pairs"))
    if decision.is_delete:
        kept = decision.image_b_id if decision.deleted_image_id == decision.image_a_id else decision.image_a_id
        messages.success(
            request,
            f"Moved #{decision.deleted_image_id} ({decision.deleted_name}) to the trash and kept #{kept}.",
        )
        return _back(request, reverse("duplicates:pairs"))
    messages.success(request, f"#{pair.image_a_id} ~ #{pair.image_b_id}: {decision.get_action_display().lower()}.")
    return _back(request, reverse("duplicates:pairs"))


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
    return _back(request, reverse("duplicates:pair-detail", args=[pair.pk]))


@staff_required
@require_POST
def decision_undo(request: HttpRequest, pk: int) -> HttpResponse:
    decision = get_object_or_404(DuplicateDecision, pk=pk)
    try:
        _undone(request, duplicate_decision_undo(decision=decision, user=request.user))
    except ReviewError as error:
        messages.error(request, error.message)
    return _back(request, reverse("duplicates:decisions"))


@staff_required
def decisions(request: HttpRequest) -> HttpResponse:
    """The log: group decisions (each with its undo) above the pair decisions, each list paged on its own."""
    page = Paginator(selectors.decision_list(), DECISIONS_PAGE_SIZE).get_page(
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
    return _back(request, reverse("duplicates:pairs"))


@staff_required
@require_http_methods(["GET", "POST"])
def calibration(request: HttpRequest) -> HttpResponse:
    form = CalibrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = calibration_run_create(
            sample_size=form.cleaned_data["sample_size"],
            target_precision=form.cleaned_data["target_precision"],
            requested_by=request.user,
        )
        messages.success(request, f"Calibration #{run.pk} is queued; this page shows it when it is done.")
        return redirect("duplicates:calibration")
    latest = selectors.latest_calibration()
    runs = list(CalibrationRun.objects.all()[:10])
    overview = selectors.thresholds_overview()
    pairs_aside = (latest.result or {}).get("probable_copies", []) if latest else []
    return render(
        request,
        "duplicates/calibration.html",
        {
            "form": form,
            "latest": latest,
            "runs": runs,
            "overview": overview,
            "history": selectors.threshold_history(),
            # Only the newest finished run of the model in use may be applied.
            "can_apply": latest is not None and latest.model_name == overview.thresholds.model_name,
            # The page polls itself while a run is queued or running and reloads when it is done.
            "in_progress": any(
                run.status in (CalibrationRun.Status.QUEUED, CalibrationRun.Status.RUNNING) for run in runs
            ),
            "copies_aside": len({other for _, other in pairs_aside}),
            "samples_with_copies": len({source for source, _ in pairs_aside}),
        },
        status=400 if request.method == "POST" else 200,
    )


@staff_required
def calibration_plot(request: HttpRequest, pk: int) -> FileResponse:
    run = get_object_or_404(CalibrationRun, pk=pk)
    if not run.plot:
        raise Http404("This run has no plot.")
    try:
        return FileResponse(run.plot.open("rb"), content_type="image/png")
    except OSError:
        raise Http404("The plot file is missing.") from None


def _thresholds_change_page(request: HttpRequest, context: dict[str, object], *, status: int = 200) -> HttpResponse:
    context = {"overview": selectors.thresholds_overview(), **context}
    return render(request, "duplicates/thresholds_change.html", context, status=status)


@staff_required
@require_POST
def calibration_apply(request: HttpRequest, pk: int) -> HttpResponse:
    """Apply a calibration's thresholds: first a confirmation with old -> new, then (confirm) for real."""
    run = get_object_or_404(CalibrationRun, pk=pk)
    form = ThresholdsApplyForm(request.POST)
    if not form.is_valid():
        return _thresholds_change_page(request, {"run": run, "error": "Thresholds must be numbers."}, status=400)
    values = {name: form.cleaned_data[name] for name in ("near_duplicate", "similar", "match")}
    try:
        if not form.cleaned_data["confirm"]:
            proposed = calibration_thresholds_propose(run=run, **values)
            return _thresholds_change_page(request, {"run": run, "proposed": proposed})
        setting = calibration_thresholds_apply(run=run, user=request.user, **values)
    except ServiceError as error:
        return _thresholds_change_page(request, {"run": run, "error": error.message}, status=error.status)
    messages.success(
        request,
        f"Applied: near-duplicate ≥ {setting.near_duplicate:.3f}, similar ≥ {setting.similar:.3f}, "
        f"match ≥ {setting.match:.3f}. Pairs are re-banded in the background; review decisions stay as they are.",
    )
    return redirect("duplicates:calibration")


@staff_required
@require_POST
def thresholds_undo_view(request: HttpRequest) -> HttpResponse:
    """Undo the applied thresholds in force: the ones before them (or the defaults) are back."""
    form = ThresholdsUndoForm(request.POST)
    setting_id = form.cleaned_data.get("setting") if form.is_valid() else None
    try:
        undone = thresholds_undo(user=request.user, setting_id=setting_id)
    except ServiceError as error:
        return _thresholds_change_page(request, {"error": error.message}, status=error.status)
    now = selectors.thresholds_overview().thresholds
    messages.success(
        request,
        f"Undone thresholds #{undone.pk}. In force now: near-duplicate ≥ {now.near_duplicate:.3f} ({now.source}), "
        f"similar ≥ {now.similar:.3f}. Pairs are re-banded in the background.",
    )
    return redirect("duplicates:calibration")
