"""The fast path for log extras (inputs.flat_json_text) keeps exactly what the
json_trimmed walk keeps: a flat extra it takes is stored as the walk would
store it, and anything the walk would cut, mark or convert (NaN, nesting,
past HUB_MAX_LOG_EXTRA_BYTES) goes to the walk. And a NUL, which PostgreSQL
refuses in text and jsonb, is stored as U+FFFD instead of failing its batch."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plugins_app.inputs import flat_json_text
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.logs import (
    PluginLogRecord,
    bounded_log_extra,
    log_extra_json,
    logs_ingest,
)
from plugins_app.runs.models import RunLogLine
from tests.builders import CHANNEL, connect_instance, new_run

# NUL aside: it is replaced after trimming (the tests at the end).
TEXT = st.characters(blacklist_characters="\x00")
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and ±Infinity included
    | st.text(TEXT, max_size=40)
)
EXTRAS = st.dictionaries(
    st.text(TEXT, max_size=12),
    SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(TEXT), SCALARS),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(extra=EXTRAS, limit=st.integers(min_value=0, max_value=300))
def test_the_fast_path_stores_what_the_walk_keeps(
    extra: dict[str, Any], limit: int
) -> None:
    from django.conf import settings as django_settings

    before = django_settings.HUB_MAX_LOG_EXTRA_BYTES
    django_settings.HUB_MAX_LOG_EXTRA_BYTES = limit
    try:
        stored = log_extra_json(extra)
        walked = bounded_log_extra(extra)
    finally:
        django_settings.HUB_MAX_LOG_EXTRA_BYTES = before
    # Valid JSON for SQLite's JSON_VALID and jsonb: no NaN/Infinity constants.
    assert json.loads(stored, parse_constant=_refuse) == walked


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} stored as a JSON constant")


def test_only_flat_finite_extras_that_fit_take_the_fast_path() -> None:
    flat = {"progress": 3, "total": 10, "model": "yolo", "score": 0.5, "ok": None}
    assert flat_json_text(flat, max_depth=64, max_chars=1000) == json.dumps(flat)
    assert flat_json_text({}, max_depth=64, max_chars=1000) == "{}"
    for walked in (
        {"score": float("nan")},
        {"x": -float("inf")},
        {"nested": {"a": 1}},
        {"list": [1]},
        {1: "not a str key"},
        {"long": "x" * 2000},
        ["not", "a", "dict"],
    ):
        assert flat_json_text(walked, max_depth=64, max_chars=1000) is None, walked
    assert flat_json_text(flat, max_depth=0, max_chars=1000) is None


# --- NUL: PostgreSQL refuses it in text and jsonb, failing the whole batch ------
def test_a_nul_escape_in_an_extra_becomes_u_fffd_and_a_literal_one_stays() -> None:
    stored = log_extra_json({"k\x00": "v\x00", "text": "\\u0000"})
    assert "\\u0000" not in stored.replace("\\\\u0000", "")
    assert json.loads(stored) == {"k\ufffd": "v\ufffd", "text": "\\u0000"}


def test_a_line_with_nul_is_stored_with_u_fffd_and_its_batch_kept(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin)
    assert dispatch_pending(plugin.pk) == 1
    session = run.items.get().session
    batch = [
        PluginLogRecord(session, "INFO", "before", {}),
        PluginLogRecord(session, "INFO", "bin\x00ary", {"raw": "a\x00b"}),
        PluginLogRecord(session, "INFO", "after", {}),
    ]

    assert logs_ingest(batch, channel_name=CHANNEL) == 0

    lines = RunLogLine.objects.filter(run=run, level="INFO")
    assert [(ln.message, ln.extra) for ln in lines] == [
        ("before", {}),
        ("bin\ufffdary", {"raw": "a\ufffdb"}),
        ("after", {}),
    ]
