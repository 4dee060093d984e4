from __future__ import annotations

import json
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from plugins_app.inputs import parse_id
from plugins_app.plugins.models import Plugin
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create
from plugins_app.runs.models import Run
from plugins_app.web.api import run_out
from plugins_app.workspace.models import Project


class Command(BaseCommand):
    help = (
        "Start a run (as the Run dialog does) and, with --wait, wait for its end; "
        "prints the run's state as JSON. Exit code 1 when the run did not succeed."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--plugin", required=True, help="plugin pk or public ID")
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--asset", action="append", default=[], help="external ID")
        parser.add_argument("--batch", type=int, action="append", default=[])
        parser.add_argument(
            "--map", action="append", default=[], help="modelClass=schemaId"
        )
        parser.add_argument("--config", default=None, help="config JSON")
        parser.add_argument("--user", default=None, help="run as this username")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=600)

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["plugin"]
        plugin = Plugin.objects.filter(
            Q(public_id=key) | Q(pk=parse_id(key) or -1)
        ).first()
        project = Project.objects.filter(pk=options["project"]).first()
        if plugin is None or project is None:
            raise CommandError("Unknown plugin or project")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
        mapping = dict(m.split("=", 1) for m in options["map"] if "=" in m)
        try:
            run = run_create(
                RunRequest(
                    plugin=plugin,
                    project=project,
                    user=user,
                    class_mapping=mapping,
                    config_json=options["config"] or plugin.default_config,
                    external_ids=options["asset"],
                    batch_ids=options["batch"],
                )
            )
        except RunRequestError as exc:
            raise CommandError(json.dumps({"errors": exc.errors})) from exc
        deadline = time.monotonic() + options["timeout"]
        while options["wait"] and not run.is_finished and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()
        self.stdout.write(json.dumps(run_out(run), default=str))
        if options["wait"] and run.status != Run.Status.SUCCEEDED:
            raise SystemExit(1)
