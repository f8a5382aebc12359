"""{% worker_health_now as health %}: the background worker's health for the banner in every signed-in page."""

from __future__ import annotations

from typing import Any

from django import template

from search.worker_health import WorkerHealth, worker_health

register = template.Library()


@register.simple_tag(takes_context=True)
def worker_health_now(context: dict[str, Any]) -> WorkerHealth | None:
    """None for visitors who are not signed in (the login page says nothing about the servers)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    return worker_health()
