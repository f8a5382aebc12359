"""The two-minute embedding schedule runs the pipeline's task, so re-driven embeddings are followed by detection."""

from django.db import migrations

SCHEDULE_NAME = "imgsim: resume embedding"


def point_at_pipeline(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "pipeline.tasks.embed_pending", "schedule_type": "I", "minutes": 2, "repeats": -1},
    )


def point_at_search(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).update(func="search.tasks.embed_pending")


class Migration(migrations.Migration):
    dependencies = [("search", "0002_resume_embedding_schedule")]

    operations = [migrations.RunPython(point_at_pipeline, point_at_search)]
