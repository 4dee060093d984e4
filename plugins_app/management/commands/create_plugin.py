from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from plugins_app.plugins.models import PluginType
from plugins_app.plugins.services import plugin_create
from plugins_app.workspace.models import Organization


class Command(BaseCommand):
    help = "Register a plugin and print its ID and secret as JSON (shown once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--type", default=PluginType.MODEL, choices=PluginType.values
        )
        parser.add_argument("--description", default="")
        parser.add_argument("--class", dest="classes", action="append", default=[])
        parser.add_argument("--config", default="{}", help="default config JSON")
        parser.add_argument("--timeout", type=int, default=300)
        parser.add_argument(
            "--project", type=int, action="append", default=[], help="activate on"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"No organization with slug {options['org']!r}")
        try:
            credentials = plugin_create(
                organization=org,
                name=options["name"],
                type=options["type"],
                description=options["description"],
                class_names=options["classes"],
                default_config=options["config"],
                timeout_seconds=options["timeout"],
                projects=list(org.projects.filter(pk__in=options["project"])),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        plugin = credentials.plugin
        self.stdout.write(
            json.dumps({"pk": plugin.pk, **credentials.as_dict(), "name": plugin.name})
        )
