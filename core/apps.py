from django.apps import AppConfig


class CoreConfig(AppConfig):
    """An app only so that its migration creates the shared cache table (throttles, login attempts)."""

    name = "core"
    verbose_name = "Shared pieces"
