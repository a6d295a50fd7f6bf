"""The embedded Hub-compatible server. Sharing itself is `AdapterModel.push_to_hub` / `AutoAdapter.from_pretrained`."""

from adapterzoo.hub.server import EmbeddedHub, HubSettings, serve, use_endpoint
from adapterzoo.hub.store import HubError, RepoStore

__all__ = ["EmbeddedHub", "HubError", "HubSettings", "RepoStore", "serve", "use_endpoint"]
