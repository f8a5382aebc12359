"""WorkerHeartbeat moves to the worker app (worker/migrations/0001): the model leaves this app's state only; its
table, search_workerheartbeat, stays as it is and is the worker app's from now on."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('search', '0006_threshold_setting'),
        ('worker', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='WorkerHeartbeat')],
            database_operations=[],
        ),
    ]
