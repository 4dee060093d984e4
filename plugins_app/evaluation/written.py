"""What each compared run wrote on a chunk of tasks, read in one pass for all
the runs: the rule of runs/run_answers.py (the run's answer is the
`previousAnswer` of the first replacing change after its own last write, or
the task's answer when nothing replaced it), applied to the ids and names of
the tasks' history first, so that only the answers wanted are read and
decoded. run_answers reads one run at a time and decodes every later event's
`previousAnswer`; at 10,000 tasks × 2 runs that decoding was a third of the
comparison's time (bench/compare.py). tests/test_evaluation.py checks both
give the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.fields.json import KeyTransform

from plugins_app.runs.run_answers import REPLACING
from plugins_app.workspace import events
from plugins_app.workspace.models import Task, TaskEvent


def answers_written(
    run_ids: Sequence[int], task_ids: Sequence[int]
) -> list[dict[int, Any]]:
    """Per run (in the order given), task id → the answer the run wrote there;
    tasks a run never wrote are absent from its dict."""
    wanted = set(run_ids)
    rows = (
        TaskEvent.objects.filter(task_id__in=list(task_ids), name__in=REPLACING)
        .annotate(
            run=KeyTransform("run", "data"),
            replaced=ExpressionWrapper(
                Q(data__has_key="previousAnswer"), output_field=BooleanField()
            ),
        )
        .order_by("task_id", "id")
        .values_list("task_id", "id", "name", "run", "replaced")
    )
    # Per run and task: the event whose previousAnswer is the run's answer,
    # or None while the task still holds it.
    source: dict[int, dict[int, int | None]] = {r: {} for r in run_ids}
    for task_id, event_id, name, run, replaced in rows:
        if replaced:
            # This change replaced whatever answer stood: the answer of each
            # run whose last write is the latest one so far and not yet closed.
            for found in source.values():
                if task_id in found and found[task_id] is None:
                    found[task_id] = event_id
        if (
            name == events.ANSWER_WRITTEN
            and isinstance(run, int)
            and not isinstance(run, bool)
            and run in wanted
        ):
            source[run][task_id] = None  # its (latest) write: open again
    return _read(run_ids, source)


def _read(
    run_ids: Sequence[int], source: dict[int, dict[int, int | None]]
) -> list[dict[int, Any]]:
    event_ids = {e for found in source.values() for e in found.values() if e}
    current = {t for found in source.values() for t, e in found.items() if e is None}
    replaced: dict[int, Any] = {}
    ids = sorted(event_ids)
    for start in range(0, len(ids), 2000):
        replaced.update(
            TaskEvent.objects.filter(id__in=ids[start : start + 2000])
            .order_by()
            .values_list("id", "data__previousAnswer")
        )
    answers: dict[int, Any] = dict(
        Task.objects.filter(pk__in=sorted(current)).values_list("id", "answer")
    )
    return [
        {
            task_id: (replaced.get(event_id) or {})
            if event_id is not None
            else answers.get(task_id)
            for task_id, event_id in source[run].items()
        }
        for run in run_ids
    ]
