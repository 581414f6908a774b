"""Smart ID Messaging (Hermod): its REST API, the allowed clients of its `application.yml`, and
the comment-keeping round trip that edits that file."""

from smartid.hermod.api import HermodApi
from smartid.hermod.clients import HermodClient, HermodConfigError, generate_key, parse_clients
from smartid.hermod.config import client_section, merge_client

__all__ = [
    "HermodApi",
    "HermodClient",
    "HermodConfigError",
    "client_section",
    "generate_key",
    "merge_client",
    "parse_clients",
]
