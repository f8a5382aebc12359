from django.apps import AppConfig


class PipelineConfig(AppConfig):
    """Holds no models: its migration points the embedding schedule at pipeline.tasks."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "pipeline"
