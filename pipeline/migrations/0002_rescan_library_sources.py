"""A schedule that rescans library sources whose last scan is older than IMGSIM_SOURCE_RESCAN_MINUTES."""

from django.db import migrations

SCHEDULE_NAME = "imgsim: rescan library sources"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "pipeline.tasks.sources_rescan", "schedule_type": "I", "minutes": 15, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("pipeline", "0001_embedding_schedule_runs_the_pipeline"),
        ("gallery", "0005_library_sources"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
