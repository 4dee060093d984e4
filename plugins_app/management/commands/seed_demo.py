from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from plugins_app.demo.seed import DEMO_LOGINS, DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = "Create (or refresh) the demo organization, users, images and plugins."

    def handle(self, *args: Any, **options: Any) -> None:
        credentials = seed_demo()
        self.stdout.write(
            json.dumps(
                {
                    "logins": dict.fromkeys(DEMO_LOGINS, DEMO_PASSWORD),
                    **credentials.__dict__,
                },
                indent=2,
            )
        )
