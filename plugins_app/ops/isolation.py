"""One plugin's failure stays that plugin's: periodic work that loops over
plugins (the runs sweep) logs a plugin's error, naming it, and goes on with the
others, instead of stopping every plugin's time-outs and dispatch until the bad
data is fixed by hand."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def each_plugin(step: str, plugin_id: object) -> Iterator[None]:
    """Run the block; an exception is logged with the plugin and swallowed."""
    try:
        yield
    except Exception:
        log.exception(
            "%s failed for plugin %s; the other plugins go on",
            step,
            plugin_id,
            extra={"plugin_id": str(plugin_id), "step": step},
        )
