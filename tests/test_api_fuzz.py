"""Schemathesis over every operation of /api/openapi.json, against the real
ASGI app over a real socket, authenticated as the demo organization's admin
with a real API token: no input may get a 5xx (`not_a_server_error`).

Schemathesis' own CLI runs it (its pytest integration reads a node attribute
pytest 9 removed), in its examples, coverage (boundary values: huge integers,
nulls, wrong types) and fuzzing phases, positive and negative. Twice: with
generated path ids (mostly unknown: the 404 paths), over every operation, and
with the ids of real demo objects, so bodies and queries reach the code behind
the lookups, over the operations with such an id in their path (the others
would get the same cases as in the first pass: same seed, no path to set).
Bounded (a fixed number of examples per operation, a fixed seed, one worker)
to finish well under two minutes; `-m "not slow"` leaves it out."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from tests.builders import connect_instance
from tests.hub import LiveHub

EXAMPLES_PER_OPERATION = 15
SEED = 20261203
# Operations the schema must list (a renamed or dropped route fails here
# instead of leaving the fuzzing to fewer operations unnoticed).
AT_LEAST_OPERATIONS = 19


def _demo_ids() -> dict[str, int]:
    """Real objects of the demo organization, one per path parameter name."""
    from plugins_app.demo.seed import seed_demo
    from plugins_app.plugins.models import Plugin
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.workspace.models import Organization

    seed_demo()
    org = Organization.objects.get(slug="demo")
    project = org.projects.order_by("id").first()
    plugin = Plugin.objects.filter(organization=org, type="model").first()
    connect_instance(plugin)
    run = run_create(
        RunRequest(
            plugin=plugin,
            project=project,
            user=org.memberships.get(user__username="admin").user,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[project.assets.order_by("id").first().external_id],
            batch_ids=[],
        ),
        dispatch=False,
    )
    return {
        "plugin_id": plugin.pk,
        "project_id": project.pk,
        "run_id": run.pk,
        "task_id": project.tasks.order_by("id").first().pk,
    }


def _token(username: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return json.loads(out.getvalue())["token"]


def _schemathesis(
    hub: LiveHub, token: str, config: Path, report: Path, *only: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{hub.url}/api/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
            "--mode",
            "all",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--header",
            f"Authorization: Bearer {token}",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
            "--no-color",
            *only,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=config.parent,  # its own files (.schemathesis/) stay out of the tree
    )


def _operations_fuzzed(report: Path) -> set[str]:
    """The operations the fuzzing phase ran (from the NDJSON event report)."""
    labels = set()
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished") or {}
        if finished.get("phase") == "fuzzing" and finished.get("status") != "skip":
            labels.add(finished["recorder"]["label"])
    return labels


def _operations(hub: LiveHub) -> set[str]:
    """Every operation the schema lists, labelled as schemathesis labels them."""
    schema = httpx.get(f"{hub.url}/api/openapi.json", timeout=30).json()
    return {
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "put", "post", "patch", "delete"}
    }


@pytest.mark.slow
@pytest.mark.parametrize("ids", ["generated", "demo objects"])
def test_it_answers_no_operation_with_a_server_error(
    live_hub: LiveHub, tmp_path: Path, ids: str
) -> None:
    real = _demo_ids()
    operations = _operations(live_hub)
    assert len(operations) >= AT_LEAST_OPERATIONS, operations
    config = tmp_path / "schemathesis.toml"
    only: list[str] = []
    if ids == "demo objects":
        config.write_text(
            "[parameters]\n"
            + "".join(f'"path.{name}" = {pk}\n' for name, pk in real.items())
        )
        with_ids = "|".join(real)
        only = ["--include-path-regex", rf"\{{({with_ids})\}}"]
        operations = {o for o in operations if re.search(rf"\{{({with_ids})\}}", o)}
    else:
        config.write_text("")
    report = tmp_path / "report.ndjson"

    result = _schemathesis(live_hub, _token("admin"), config, report, *only)

    output = result.stdout[-20_000:] + result.stderr[-5_000:]
    assert result.returncode == 0, output
    assert _operations_fuzzed(report) == operations, output
