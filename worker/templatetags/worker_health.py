"""{% worker_health_now as health %}: the background worker's health for the banner in every signed-in page;
{{ text|code_spans }} shows its `commands` as code."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from worker.health import WorkerHealth, worker_health

register = template.Library()


@register.simple_tag(takes_context=True)
def worker_health_now(context: dict[str, Any]) -> WorkerHealth | None:
    """None for visitors who are not signed in (the login page says nothing about the servers)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    return worker_health()


@register.filter
def code_spans(text: str) -> SafeString:
    """The health messages mark commands with backticks (plain text for the API): on a page, each is code.
    Text with an unpaired backtick is shown as it is."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:
        return format_html("{}", text)
    return format_html_join(
        "", "{}", ((format_html("<code>{}</code>", part) if n % 2 else part,) for n, part in enumerate(parts))
    )
