"""Django's admin app, set up with our admin site."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class ImgsimAdminConfig(AdminConfig):
    """admin.site is a ThrottledAdminSite: its sign-in refuses too many failures with 429, as the site's does."""

    default_site = "core.login_throttle.ThrottledAdminSite"
