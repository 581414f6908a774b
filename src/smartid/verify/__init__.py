"""What the verify checks share apart from pytest: findings and the one failure they make,
waivers, the catalogue of checks, the TLS endpoints a site declares, what several checks read,
and drift."""

from smartid.verify.catalogue import CheckOutcome, check_catalogue, read_junit
from smartid.verify.endpoints import TlsEndpoint, tls_endpoints
from smartid.verify.findings import Findings
from smartid.verify.readings import IdmReadings

__all__ = [
    "CheckOutcome",
    "Findings",
    "IdmReadings",
    "TlsEndpoint",
    "check_catalogue",
    "read_junit",
    "tls_endpoints",
]
