"""Log lines stored before extras were bounded at ingest (HUB_MAX_JSON_DEPTH,
HUB_MAX_LOG_EXTRA_BYTES) may be nested so deeply that loading the row fails,
and with it every page of their run. Trim them as ingest trims new ones now.

Only rows whose extra is long enough to be deep are read (a nesting of 64
levels takes at least 128 characters), as text, so a huge log table costs one
indexed-less scan of a length, not a decode of every row."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import migrations

TRIMMED = (
    "Parts of this extra were cut: over HUB_MAX_JSON_DEPTH levels or "
    "HUB_MAX_LOG_EXTRA_BYTES of JSON."
)


def _kept(text: str) -> str | None:
    """The extra to store instead, or None when it may stay as it is."""
    from plugins_app.inputs import json_too_deep, json_trimmed

    try:
        value: Any = json.loads(text)
    except (RecursionError, ValueError):
        return json.dumps({"hub_truncated": TRIMMED})
    if not json_too_deep(value) and len(text) <= settings.HUB_MAX_LOG_EXTRA_BYTES:
        return None
    kept, _ = json_trimmed(
        value,
        max_depth=settings.HUB_MAX_JSON_DEPTH,
        max_chars=settings.HUB_MAX_LOG_EXTRA_BYTES,
    )
    if not isinstance(kept, dict):
        kept = {"value": kept}
    kept["hub_truncated"] = TRIMMED
    return json.dumps(kept)


def trim(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    table = connection.ops.quote_name(
        apps.get_model("runs", "RunLogLine")._meta.db_table
    )
    as_text = "extra::text" if connection.vendor == "postgresql" else "extra"
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {as_text} FROM {table} WHERE length({as_text}) >= 128"  # noqa: S608
        )
        rows = cursor.fetchall()
        for pk, text in rows:
            kept = _kept(text)
            if kept is not None:
                cursor.execute(
                    f"UPDATE {table} SET extra = {cast} WHERE id = %s",  # noqa: S608
                    [kept, pk],
                )


class Migration(migrations.Migration):
    dependencies = [("runs", "0009_run_replace_submitted_undo_item_skipped")]

    operations = [migrations.RunPython(trim, migrations.RunPython.noop)]
