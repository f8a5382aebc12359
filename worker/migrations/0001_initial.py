"""WorkerHeartbeat moves here from the search app: the model's state only. Its table stays search_workerheartbeat
(created by search's 0004) untouched, and its content type (with its permissions) follows it to this app."""

from django.db import migrations, models


def _move_content_type(apps, schema_editor, *, source, target):
    """WorkerHeartbeat's content type row (and so its permissions) from one app to the other, unless the target
    has one already (then the source's is stale and left alone)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_types = ContentType.objects.using(schema_editor.connection.alias)
    if not content_types.filter(app_label=target, model="workerheartbeat").exists():
        content_types.filter(app_label=source, model="workerheartbeat").update(app_label=target)


def content_type_to_worker(apps, schema_editor):
    _move_content_type(apps, schema_editor, source="search", target="worker")


def content_type_to_search(apps, schema_editor):
    _move_content_type(apps, schema_editor, source="worker", target="search")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("search", "0004_worker_heartbeat"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='WorkerHeartbeat',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('cluster_id', models.CharField(max_length=32, unique=True)),
                        ('host', models.CharField(max_length=255)),
                        ('pid', models.PositiveIntegerField()),
                        ('queue', models.CharField(blank=True, max_length=100)),
                        ('started_at', models.DateTimeField()),
                        ('seen_at', models.DateTimeField(db_index=True)),
                        ('stopped_at', models.DateTimeField(blank=True, help_text='Set when the cluster stopped cleanly.', null=True)),
                        ('workers', models.PositiveSmallIntegerField(default=0, help_text='Worker processes alive at the last beat.')),
                        ('busy', models.PositiveSmallIntegerField(default=0, help_text='Workers running a task at the last beat.')),
                        ('waiting_tasks', models.PositiveIntegerField(default=0, help_text='Tasks fetched by the cluster, not started.')),
                        ('worker_pids', models.JSONField(blank=True, default=list, help_text='Process ids of its workers (to inspect them).')),
                        ('restarts', models.PositiveIntegerField(default=0, help_text='Times the watchdog restarted a wedged cluster.')),
                        ('last_restart_at', models.DateTimeField(blank=True, null=True)),
                        ('last_restart_reason', models.TextField(blank=True)),
                    ],
                    options={
                        'ordering': ['-seen_at'],
                        'db_table': 'search_workerheartbeat',
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_worker, content_type_to_search),
    ]
