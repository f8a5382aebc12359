"""The database cache's table, so that `manage.py migrate` alone prepares a database-cache deployment.

Throttle counters and failed sign-ins live in the cache; on the embedded default that is this table in
the default database, shared by every web worker (Redis replaces it when IMGSIM_REDIS_URL is set, and
then this creates nothing).
"""

from django.core.management import call_command
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def create_cache_table(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies: list[tuple[str, str]] = []

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop, elidable=False)]
