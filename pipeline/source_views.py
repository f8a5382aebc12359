"""The library sources page (staff): the folders read in place, each with its state, latest scan (progress while
it runs, followed by static/sources.js) and the machines that cannot read it, scan now, and a form to register a
folder."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.access import staff_required
from core.errors import ServiceError
from gallery.models import LibrarySource, SourceReach
from gallery.source_reach import source_reach_check_due
from pipeline.forms import LibrarySourceForm
from pipeline.selectors import library_sources_with_latest_scan
from pipeline.sources import library_source_create, library_source_scan_request

PROBLEMS_SHOWN = 20


@staff_required
@require_http_methods(["GET", "POST"])
def sources(request: HttpRequest) -> HttpResponse:
    form = LibrarySourceForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            source = library_source_create(**form.cleaned_data, created_by=request.user)
        except ServiceError as error:
            form.add_error("root" if error.code != "invalid_name" else "name", error.message)
            status = error.status
        else:
            messages.success(request, f"Added {source.name}: its first scan is queued.")
            return redirect("gallery:sources")
    elif request.method == "POST":
        status = 400
    # This web machine's own look at each root (at most once a minute per process), so the page names it too.
    source_reach_check_due(role=SourceReach.Role.WEB, sources=list(LibrarySource.objects.only("pk", "name", "root")))
    listed = library_sources_with_latest_scan()
    context = {
        "sources": listed,
        "form": form,
        "problems_shown": PROBLEMS_SHOWN,
        "grace_days": settings.IMGSIM_SOURCE_MISSING_GRACE_DAYS,
        "rescan_minutes": settings.IMGSIM_SOURCE_RESCAN_MINUTES,
        "scanning": any(s.latest_scan is not None and s.latest_scan.in_progress for s in listed),  # type: ignore[attr-defined]
    }
    return render(request, "pipeline/sources.html", context, status=status)


@staff_required
@require_POST
def source_scan(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(LibrarySource, pk=pk)
    scan = library_source_scan_request(source=source, requested_by=request.user)
    messages.success(request, f"Scan {scan.pk} of {source.name} is {scan.get_status_display().lower()}.")
    return redirect("gallery:sources")
