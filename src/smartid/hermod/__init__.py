"""Smart ID Messaging (Hermod): its REST API, the allowed clients of its `application.yml`, and
the comment-keeping round trip that edits that file, and the refresh that makes Hermod apply it."""

from smartid.hermod.api import HermodApi
from smartid.hermod.clients import HermodClient, HermodConfigError, generate_key, parse_clients
from smartid.hermod.config import client_section, merge_client
from smartid.hermod.refresh import Refresh, RefreshResult, run_refresh

__all__ = [
    "HermodApi",
    "HermodClient",
    "HermodConfigError",
    "Refresh",
    "RefreshResult",
    "client_section",
    "generate_key",
    "merge_client",
    "parse_clients",
    "run_refresh",
]
