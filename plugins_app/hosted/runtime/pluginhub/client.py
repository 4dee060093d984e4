"""The client handlers use to act on their project: JSON-RPC to the hub worker
over the pipe it gave the sandbox. Every call is scoped by the hub to the run's
project and task; naming another asset or project is refused.

Two vocabularies: the hub's own (`create_issue`, `send_back`, ...) and Kili's
(`create_issues`, `send_back_to_queue`, ...) so Kili handlers port unchanged.
"""

import ast
import json
from collections.abc import Sequence
from typing import Any


class HubError(Exception):
    """The hub refused a call; the message says why."""


class HubClient:
    def __init__(self, channel: Any, *, project_id: str, asset_id: str) -> None:
        self._channel = channel
        self.project_id = project_id
        self.asset_id = asset_id

    # --- the hub's vocabulary ------------------------------------------------
    def create_issue(self, text: str, *, object_id: str | None = None) -> dict:
        """Open an issue on the task (optionally pointing at one object)."""
        return self._call("issue_create", content=text, object_id=object_id)

    def send_back(self, reason: str = "") -> dict:
        """Send the task back to the labeling queue."""
        return self._call("send_back", reason=reason)

    def add_to_review(self, asset_ids: Sequence[str] = (), **_: Any) -> dict:
        """Make sure the task waits in the review stage (Kili's name too)."""
        self._same_asset(asset_ids)
        return self._call("add_to_review")

    def set_metadata(self, values: dict[str, Any]) -> dict:
        """Merge `values` into the task's metadata (None removes a key)."""
        return self._call("metadata_update", values=values)

    def ontology(self) -> dict:
        return self._call("ontology")

    def labels(self) -> list[dict]:
        """Every label of the asset (several under consensus)."""
        return self._call("labels")

    def asset(self) -> dict:
        return self._call("asset")

    # --- Kili's vocabulary -----------------------------------------------------
    def create_issues(
        self,
        project_id: str,
        label_id_array: Sequence[str],
        object_mid_array: Sequence[str | None] | None = None,
        text_array: Sequence[str | None] | None = None,
    ) -> list[dict]:
        self._same_project(project_id)
        mids = list(object_mid_array or [None] * len(label_id_array))
        texts = list(text_array or [""] * len(label_id_array))
        return [
            self.create_issue(text or "", object_id=mid)
            for mid, text in zip(mids, texts, strict=False)
        ]

    def append_to_issues(
        self,
        label_id: str,
        project_id: str,
        object_mid: str | None = None,
        text: str | None = None,
    ) -> dict:
        self._same_project(project_id)
        return self.create_issue(text or "", object_id=object_mid)

    def send_back_to_queue(self, asset_ids: Sequence[str] = (), **_: Any) -> dict:
        self._same_asset(asset_ids)
        return self.send_back()

    def update_properties_in_assets(
        self,
        asset_ids: Sequence[str] = (),
        json_metadatas: Sequence[Any] | None = None,
        **_: Any,
    ) -> list[dict]:
        self._same_asset(asset_ids)
        return [self.set_metadata(_as_dict(m)) for m in (json_metadatas or [])]

    def assets(self, **_: Any) -> list[dict]:
        return [self.asset()]

    # --- plumbing --------------------------------------------------------------
    def _same_project(self, project_id: Any) -> None:
        if project_id is not None and str(project_id) != self.project_id:
            raise HubError(
                f"project {project_id!r} is not this run's project "
                f"({self.project_id!r}); a hosted plugin acts on its own only"
            )

    def _same_asset(self, asset_ids: Sequence[Any]) -> None:
        others = [a for a in asset_ids if str(a) != self.asset_id]
        if others:
            raise HubError(
                f"assets {others!r} are not this run's asset ({self.asset_id!r}); "
                "a hosted plugin acts on the asset it was triggered for only"
            )

    def _call(self, method: str, **params: Any) -> Any:
        reply = self._channel.call(method, params)
        if "error" in reply:
            raise HubError(reply["error"])
        return reply.get("result")


def _as_dict(metadata: Any) -> dict[str, Any]:
    # Kili examples pass dicts, JSON text, or Python-literal text like
    # "{'accuracy': 50.0}"; all three mean the same mapping.
    if isinstance(metadata, dict):
        return metadata
    if isinstance(metadata, str):
        try:
            value = json.loads(metadata)
        except ValueError:
            value = ast.literal_eval(metadata)
        if isinstance(value, dict):
            return value
    raise HubError(f"metadata must be a mapping, got {metadata!r}")
