from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.workspace.models import ApiToken


class Command(BaseCommand):
    help = "Create a personal token for the JSON API (printed once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError("No such user")
        token = new_token()
        ApiToken.objects.create(
            user=user, name=options["name"], key_hash=token_hash(token)
        )
        self.stdout.write(json.dumps({"token": token}))
