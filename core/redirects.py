"""Where a form returns to: the page it was posted from (its `next` field), only ever on this site."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """To the posted `next` when it is a page of this site (an open redirect otherwise: a link elsewhere
    dressed as ours), else to `fallback` (a URL or a URL name)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(fallback)
