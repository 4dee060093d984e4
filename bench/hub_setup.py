"""Prepare an embedded hub for the benchmarks, in the HUB_VAR_DIR it is given:
migrate, then one organization, the demo admin (password from seed_demo), a
project with the demo ontology and a few assets, one Model plugin activated on
it, and an API token. Prints the ids and credentials as one JSON object.

    HUB_VAR_DIR=/tmp/x .venv/bin/python bench/hub_setup.py

With BENCH_PLUGIN_TYPE (e.g. batch_model) the plugin is of that type; with
BENCH_EXTRA_ASSETS=N the project gets N more assets (and tasks), written in bulk.

(The same objects as `manage.py seed_demo`, without generating the demo images,
which takes ~10 s; the bench plugin never fetches the image.)
"""

from __future__ import annotations

import json
import os
import sys

from _processes import django_here

ASSETS = 16


def main() -> None:
    if "HUB_VAR_DIR" not in os.environ:
        sys.exit("set HUB_VAR_DIR to a scratch directory")
    django_here()
    from django.db.backends.signals import connection_created

    def no_fsync(sender: object, connection: object, **kwargs: object) -> None:
        # This setup process only: skip fsyncs while migrating a scratch DB.
        # The hub's own connections keep the settings' PRAGMAs.
        if getattr(connection, "vendor", "") == "sqlite":
            connection.cursor().execute("PRAGMA synchronous=OFF")  # type: ignore[attr-defined]

    connection_created.connect(no_fsync)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    from plugins_app.demo.seed import DEMO_ONTOLOGY, DEMO_PASSWORD
    from plugins_app.plugins.models import PluginType
    from plugins_app.plugins.secrets import new_token, token_hash
    from plugins_app.plugins.services import plugin_create
    from plugins_app.workspace.models import (
        ApiToken,
        Asset,
        Membership,
        Organization,
        Project,
        Task,
    )

    org = Organization.objects.create(name="Bench Labs", slug="bench")
    admin = get_user_model().objects.create_user(
        "admin", "admin@bench.local", DEMO_PASSWORD, is_staff=True, is_superuser=True
    )
    Membership.objects.create(user=admin, organization=org, role="admin")
    project = Project.objects.create(
        organization=org, name="Bench", ontology=DEMO_ONTOLOGY
    )
    external_ids = []
    for n in range(ASSETS):
        asset = Asset.objects.create(
            project=project,
            external_id=f"asset-{n:03d}",
            file=f"demo/asset-{n:03d}.png",
            width=640,
            height=480,
        )
        Task.objects.create(project=project, asset=asset)
        external_ids.append(asset.external_id)
    extra = int(os.environ.get("BENCH_EXTRA_ASSETS", "0"))
    bulk = Asset.objects.bulk_create(
        Asset(
            project=project,
            external_id=f"bulk-{n:05d}",
            file="demo/none.png",
            width=640,
            height=480,
        )
        for n in range(extra)
    )
    Task.objects.bulk_create(Task(project=project, asset=a) for a in bulk)
    credentials = plugin_create(
        organization=org,
        name="Bench model",
        type=os.environ.get("BENCH_PLUGIN_TYPE", PluginType.MODEL),
        class_names=["face", "coin"],
        default_config="{}",
        timeout_seconds=120,
        projects=[project],
    )
    token = new_token()
    ApiToken.objects.create(user=admin, name="bench", key_hash=token_hash(token))
    print(
        json.dumps(
            {
                "project_id": project.pk,
                "plugin_pk": credentials.plugin.pk,
                "plugin_id": credentials.plugin.public_id,
                "plugin_secret": credentials.secret,
                "token": token,
                "username": "admin",
                "password": DEMO_PASSWORD,
                "external_ids": external_ids,
            }
        )
    )


if __name__ == "__main__":
    main()
