"""echo_model.py's Model plugin declaring its version (MODEL_VERSION) in its
heartbeat. The SDK is unchanged: a subclass of its ModelPlugin sends the
`version` key next to id and secret (SDK 1.3.22 and 1.4.x both call
self.heartbeat on connect and every 60 s)."""

import os

from echo_model import callback
from imerit_ango.plugins import ModelPlugin, run


class VersionedModelPlugin(ModelPlugin):
    def heartbeat(self):
        try:
            self.emit(
                "heartbeat",
                {
                    "id": self.id,
                    "secret": self.secret,
                    "version": os.environ["MODEL_VERSION"],
                },
            )
        except Exception as e:  # as the SDK's own heartbeat: no socket, no plugin
            self.logger.critical(e)
            os._exit(1)


if __name__ == "__main__":
    plugin = VersionedModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
        host=os.environ["HOST"],
    )
    run(plugin, host=os.environ["HOST"])
