"""Staff pages for the thresholds: calibration runs and their plots, applying a run's thresholds after a
confirmation, and undoing the thresholds in force."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.access import staff_required
from core.errors import ServiceError
from duplicates.forms import CalibrationForm, ThresholdsApplyForm, ThresholdsUndoForm
from duplicates.models import CalibrationRun
from duplicates.selectors import thresholds as threshold_selectors
from duplicates.services.calibration import calibration_run_create
from duplicates.services.thresholds import calibration_thresholds_apply, calibration_thresholds_propose, thresholds_undo


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
    latest = threshold_selectors.latest_calibration()
    runs = list(CalibrationRun.objects.all()[:10])
    overview = threshold_selectors.thresholds_overview()
    pairs_aside = (latest.result or {}).get("probable_copies", []) if latest else []
    return render(
        request,
        "duplicates/calibration.html",
        {
            "form": form,
            "latest": latest,
            "runs": runs,
            "overview": overview,
            "history": threshold_selectors.threshold_history(),
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
    context = {"overview": threshold_selectors.thresholds_overview(), **context}
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
    now = threshold_selectors.thresholds_overview().thresholds
    messages.success(
        request,
        f"Undone thresholds #{undone.pk}. In force now: near-duplicate ≥ {now.near_duplicate:.3f} ({now.source}), "
        f"similar ≥ {now.similar:.3f}. Pairs are re-banded in the background.",
    )
    return redirect("duplicates:calibration")
