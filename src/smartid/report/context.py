"""What a run was pointed at, kept beside its results (docs/operations.md): the site's endpoints
as the checks tested them, the lab faults switched on, and the waivers in force.

The pytest glue writes it at the end of a run into the results folder as `smartid-run.json`
(typed, for the nightly's `summary.json` and sign-off page) and adds the endpoints and faults to
`environment.properties` (text, for Allure's own Metadata block). Every value is masked before it
is written. Allure 3 reads the JSON file as an attachment that no test links, and shows nothing of
it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smartid.masking import MASKER
from smartid.site import Site, Waiver
from smartid.verify.endpoints import tls_endpoints

__all__ = ["CONTEXT_FILE", "RunContext", "read_context", "run_context", "write_context"]

CONTEXT_FILE = "smartid-run.json"
_OPERATOR = "IDM Operator"


class RunContext(BaseModel):
    """The target of one run as the report shows it; empty for a run that left no context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Display name -> URL, in the order the checks observe them.
    endpoints: dict[str, str] = Field(default_factory=dict)
    lab_faults: tuple[str, ...] = ()
    waivers_in_force: tuple[Waiver, ...] = ()

    def environment(self) -> dict[str, str]:
        """The `environment.properties` entries: one per endpoint."""
        return {f"endpoint.{name}": url for name, url in self.endpoints.items()}

    def waivers_json(self) -> list[dict[str, str]]:
        return [
            {"check": w.check, "reason": w.reason, "owner": w.owner, "until": w.until.isoformat()}
            for w in self.waivers_in_force
        ]


def _endpoints(site: Site) -> dict[str, str]:
    found = {endpoint.label: endpoint.url for endpoint in tls_endpoints(site)}
    idm = site.idm
    if idm is not None and idm.operator_url and _OPERATOR not in found:
        # Observed once with IDM Admin when both share a listener, but tested under its own URL.
        items = list(found.items())
        at = 1 if items else 0
        found = dict([*items[:at], (_OPERATOR, idm.operator_url), *items[at:]])
    return found


def run_context(site: Site, *, lab_faults: Iterable[str], today: date) -> RunContext:
    """The context of a run against `site`: a waiver is in force up to and including its day."""
    return RunContext(
        endpoints=_endpoints(site),
        lab_faults=tuple(sorted(lab_faults)),
        waivers_in_force=tuple(w for w in site.waivers if today <= w.until),
    )


def _masked(node: Any) -> Any:
    if isinstance(node, str):
        return MASKER.mask(node)
    if isinstance(node, list):
        return [_masked(item) for item in node]
    if isinstance(node, dict):
        return {MASKER.mask(str(k)): _masked(v) for k, v in node.items()}
    return node


def write_context(results_dir: Path, context: RunContext) -> Path:
    """`smartid-run.json`, each string masked before it is serialized (a secret's JSON escape
    would not match the masker otherwise)."""
    path = results_dir / CONTEXT_FILE
    text = json.dumps(_masked(context.model_dump(mode="json")), indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_context(results_dir: Path) -> RunContext:
    """What `write_context()` wrote; an empty context when the run wrote none (or it is cut)."""
    try:
        return RunContext.model_validate_json((results_dir / CONTEXT_FILE).read_bytes())
    except (OSError, ValidationError):
        return RunContext()
