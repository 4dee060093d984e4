"""The library hosted plugins import, inside their sandbox.

`from pluginhub.plugins import PluginCore` stands where Kili handlers have
`from kili.plugins import PluginCore`; `self.kili` (also `self.hub`) talks to
the hub over a pipe. Nothing here can reach the hub's database or settings.
"""

from pluginhub.client import HubClient, HubError
from pluginhub.plugins import PluginCore

__all__ = ["HubClient", "HubError", "PluginCore"]
