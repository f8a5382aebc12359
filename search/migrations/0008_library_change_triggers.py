"""The library change log is written by the database itself for every image write that changes what a search
may return: a row of the image table inserted as indexed, an indexed one deleted, or a row that is or becomes
indexed updated in a column a search reads (status, embedding, embedding_model, rating, trashed_at). A trigger
runs in the transaction of the write, so no write path (a service, the admin, a bulk update, raw SQL) can skip
the log or commit without it; writes to images no search can return (queued, rejected, failed) log nothing.
"""

from django.db import migrations
from django.db.utils import NotSupportedError

WATCHED = ("status", "embedding", "embedding_model", "rating", "trashed_at")
LOG = "INSERT INTO search_librarychange (kind, image_id, created_at) VALUES ('image', {row}.id, {now})"

SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
SQLITE_CHANGED = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in WATCHED)
INDEXED_BEFORE_OR_AFTER = "(OLD.status = 'indexed' OR NEW.status = 'indexed')"
SQLITE_CREATE = [
    f"""CREATE TRIGGER search_library_change_on_image_insert AFTER INSERT ON gallery_image
        FOR EACH ROW WHEN NEW.status = 'indexed'
        BEGIN {LOG.format(row="NEW", now=SQLITE_NOW)}; END""",
    f"""CREATE TRIGGER search_library_change_on_image_update AFTER UPDATE OF {", ".join(WATCHED)} ON gallery_image
        FOR EACH ROW WHEN {INDEXED_BEFORE_OR_AFTER} AND ({SQLITE_CHANGED})
        BEGIN {LOG.format(row="NEW", now=SQLITE_NOW)}; END""",
    f"""CREATE TRIGGER search_library_change_on_image_delete AFTER DELETE ON gallery_image
        FOR EACH ROW WHEN OLD.status = 'indexed' BEGIN {LOG.format(row="OLD", now=SQLITE_NOW)}; END""",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS search_library_change_on_image_{event}" for event in ("insert", "update", "delete")
]

POSTGRES_CHANGED = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in WATCHED)
POSTGRES_CREATE = [
    f"""CREATE OR REPLACE FUNCTION search_library_change_log() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                {LOG.format(row="OLD", now="clock_timestamp()")};
                RETURN OLD;
            END IF;
            {LOG.format(row="NEW", now="clock_timestamp()")};
            RETURN NEW;
        END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER search_library_change_on_image_insert AFTER INSERT ON gallery_image
        FOR EACH ROW WHEN (NEW.status = 'indexed') EXECUTE FUNCTION search_library_change_log()""",
    f"""CREATE TRIGGER search_library_change_on_image_update AFTER UPDATE OF {", ".join(WATCHED)} ON gallery_image
        FOR EACH ROW WHEN ({INDEXED_BEFORE_OR_AFTER} AND ({POSTGRES_CHANGED}))
        EXECUTE FUNCTION search_library_change_log()""",
    """CREATE TRIGGER search_library_change_on_image_delete AFTER DELETE ON gallery_image
        FOR EACH ROW WHEN (OLD.status = 'indexed') EXECUTE FUNCTION search_library_change_log()""",
]
POSTGRES_DROP = [
    *(
        f"DROP TRIGGER IF EXISTS search_library_change_on_image_{event} ON gallery_image"
        for event in ("insert", "update", "delete")
    ),
    "DROP FUNCTION IF EXISTS search_library_change_log()",
]

STATEMENTS = {"sqlite": (SQLITE_CREATE, SQLITE_DROP), "postgresql": (POSTGRES_CREATE, POSTGRES_DROP)}


def _run(schema_editor, *, create: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotSupportedError(f"imgsim's library change log needs SQLite or PostgreSQL, not {vendor}")
    for statement in STATEMENTS[vendor][0 if create else 1]:
        schema_editor.execute(statement)


def create_triggers(apps, schema_editor) -> None:
    _run(schema_editor, create=True)


def drop_triggers(apps, schema_editor) -> None:
    _run(schema_editor, create=False)


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0007_worker_heartbeat_moves_to_worker"),
        ("gallery", "0004_rejected_copy_of"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
