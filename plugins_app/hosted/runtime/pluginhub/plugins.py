"""The handler base class: Kili's `PluginCore` contract.

Subclass it and define `on_submit(self, label, asset_id)` and/or
`on_review(self, label, asset_id)`; `self.kili` (alias `self.hub`) acts on the
project, `self.logger` writes to the run page, `self.project_id` is the project.
"""

import logging
from typing import Any


class PluginCore:
    logger: logging.Logger
    project_id: str

    def __init__(
        self, kili: Any, project_id: str, logger: logging.Logger | None = None
    ) -> None:
        self.kili = kili
        self.hub = kili
        self.project_id = project_id
        self.logger = logger or logging.getLogger("plugin")

    def on_submit(self, label: dict[str, Any], asset_id: str) -> None:
        """A labeler submitted `label` on the asset `asset_id`."""
        self.logger.warning("Method not implemented. Define on_submit on your plugin")

    def on_review(self, label: dict[str, Any], asset_id: str) -> None:
        """A reviewer accepted or rejected `label` on the asset `asset_id`."""
        self.logger.warning("Method not implemented. Define on_review on your plugin")

    def on_send_back_to_queue(self, label: dict[str, Any], asset_id: str) -> None:
        """The asset went back to the labeling queue."""

    def on_event(self, event: str, label: dict[str, Any], asset_id: str) -> None:
        """Any other event the plugin is triggered by."""


# Kili's newer name for the same base class.
Plugin = PluginCore
