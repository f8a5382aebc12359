"""The durable record of duplicate detection, and a schedule that checks whatever it says is unchecked.

Existing libraries start with no checks: the schedule works through them in the background once (which also
restores pairs lost by the earlier detection-inside-embedding, where a killed worker skipped them for good).
"""

import django.db.models.deletion
from django.db import migrations, models

SCHEDULE_NAME = "imgsim: detect duplicates"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": "duplicates.tasks.detect_pending", "schedule_type": "I", "minutes": 2, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("duplicates", "0002_review_log_and_calibration"),
        ("gallery", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="DetectionCheck",
            fields=[
                (
                    "image",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="gallery.image",
                    ),
                ),
                (
                    "settings_key",
                    models.CharField(db_index=True, help_text="Backbone, thresholds, verification.", max_length=100),
                ),
                ("checked_at", models.DateTimeField()),
            ],
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
