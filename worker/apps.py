from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """The background worker's own machinery: the qcluster command and its watchdog, heartbeat and health."""

    name = "worker"
    verbose_name = "Background worker"
