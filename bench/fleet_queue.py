"""Queue M single-asset runs through `run_create` (the service the JSON API and
the CLI call), in one process, one after the other, each dispatching on commit
as the API does. Prints {"seconds": ..., "run_ids": [first, last]} as JSON.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/fleet_queue.py \
        PLUGIN_PK PROJECT_ID RUNS OFFSET
"""

from __future__ import annotations

import json
import sys
import time

from _support import django_here


def main() -> None:
    plugin_pk, project_id, runs, offset = (int(a) for a in sys.argv[1:5])
    django_here()
    from django.contrib.auth import get_user_model

    from plugins_app.plugins.models import Plugin
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(pk=plugin_pk)
    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.get(username="admin")
    assets = list(project.assets.values_list("external_id", flat=True))
    start = time.perf_counter()
    first = last = 0
    for n in range(runs):
        run = run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=user,
                class_mapping={"face": "face-box"},
                config_json="{}",
                external_ids=[assets[(n + offset) % len(assets)]],
                batch_ids=[],
            )
        )
        first = first or run.pk
        last = run.pk
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "run_ids": [first, last]}), flush=True)


if __name__ == "__main__":
    main()
