"""`smartid-lab`: serve, reset and inspect the embedded lab."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from smartid.errors import SmartIDError
from smartid.lab import factory
from smartid.lab.faults import FAULTS, FaultSet
from smartid.lab.probe import probe, serves_documented_only
from smartid.lab.state import LabState, resolve_state_dir
from smartid.lab.store import Store

__all__ = ["main", "status"]


def status(state: LabState) -> dict[str, Any]:
    """The lab's status document (whether or not it runs)."""
    state.ensure()
    officer = state.pki.officer
    return {
        "running": probe(state),
        "documented_only": serves_documented_only(state),
        "state_dir": str(state.path),
        "endpoints": state.endpoints(),
        # CM's CRLs and OCSP responder, over plain HTTP as CRLs usually are (docs/lab.md).
        "cm_pki": state.revocation_base,
        "ca_bundle": str(state.pki.ca_bundle),
        "officer": {"cert": str(officer.cert), "key": str(officer.key), "p12": str(officer.p12)},
        "writes": Store(state.database).audit_count(),
        "faults": sorted(FaultSet(state.path).active()),
        "secrets_file": str(state.secrets_file),
        "package": str(state.package_file),
    }


def _serve(state: LabState, *, documented_only: bool, callback_suffix: str | None) -> int:
    from smartid.lab.server import LabServer  # the web stack, only when serving

    server = LabServer(state, documented_only=documented_only, callback_suffix=callback_suffix)
    started = time.monotonic()
    server.start()
    endpoints = state.endpoints()
    print(
        f"smartid-lab: serving from {state.path} (started in {time.monotonic() - started:.2f} s)"
        + (", documented interfaces only" if documented_only else ""),
        flush=True,
    )
    for name, url in endpoints.items():
        print(f"  {name:14} {url}", flush=True)
    print(f"  {'cm_pki':14} {state.revocation_base} (CRLs and OCSP)", flush=True)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _callback_suffix(value: str) -> str:
    if not value.startswith("/") or value.count("<type>") != 1:
        raise argparse.ArgumentTypeError(
            f"a callback suffix starts with '/' and holds <type> once (got '{value}')"
        )
    return value


def _refresh_hermod(state: LabState) -> int:
    """POST the running lab Hermod's util/refresh: it applies application.yml as it is now."""
    from smartid.lab import outbound  # requests, only for this command

    url = f"{state.endpoints()['hermod']}/util/refresh"
    try:
        answer = outbound.call("POST", url, trust=state.pki.ca_bundle, timeout=10.0)
    except outbound.CallFailed as exc:
        print(f"smartid-lab: Hermod did not refresh: {exc}", file=sys.stderr)
        return 3
    try:
        document = answer.json()
    except ValueError:
        document = {}
    if answer.status != 200:
        detail = document.get("detail") if isinstance(document, dict) else None
        print(
            f"smartid-lab: Hermod did not refresh: {detail or f'HTTP {answer.status}'}",
            file=sys.stderr,
        )
        return 2
    clients = ", ".join(document.get("clients", [])) or "none"
    print(f"smartid-lab: Hermod applied {state.hermod_config} (clients: {clients})")
    return 0


def _parser() -> argparse.ArgumentParser:
    # The common options sit on the main parser and on every subcommand, so that they work before
    # or after the subcommand and show in each one's help. SUPPRESS keeps a value given before the
    # subcommand from being reset by the subcommand's default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        help="lab state directory (default: $SMARTID_LAB_STATE, else .lab/)",
    )
    parser = argparse.ArgumentParser(prog="smartid-lab", description=__doc__, parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    serve_parser = command("serve", "run the lab in the foreground until stopped")
    serve_parser.add_argument(
        "--documented-only",
        action="store_true",
        help="IDM serves only what Nexus documents (deploy API, Hermod callback); "
        "the admin contract answers 404, as a real IDM's does",
    )
    serve_parser.add_argument(
        "--callback-suffix",
        type=_callback_suffix,
        default=None,
        help="what Hermod appends to a client's callback-url, <type> the command type, and "
        "where IDM Operator takes the callbacks (default: /callback/<type>)",
    )
    command(
        "hermod-refresh",
        "have the running lab's Hermod apply hermod/application.yml "
        "(its 'refresh configuration'; an edited file is not applied before)",
    )
    command("reset", "return the lab to factory state")
    status_parser = command("status", "show whether the lab runs, and where")
    status_parser.add_argument("--json", action="store_true", help="print JSON")
    command("faults", "list the faults, one per line: name, description, [on] when on")
    fault_parser = command("fault", "switch a fault on or off")
    fault_parser.add_argument("switch", choices=["on", "off"])
    fault_parser.add_argument("name", help="a fault name from 'smartid-lab faults'")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; a reader that closes the pipe early (`smartid-lab status | head -1`)
    ends the output quietly with exit 141 (128 + SIGPIPE, as a shell reports a killed writer)."""
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    state = LabState(
        resolve_state_dir(getattr(args, "state_dir", None) or os.environ.get("SMARTID_LAB_STATE"))
    )
    try:
        if args.command == "serve":
            return _serve(
                state, documented_only=args.documented_only, callback_suffix=args.callback_suffix
            )
        if args.command == "hermod-refresh":
            return _refresh_hermod(state)
        if args.command == "reset":
            state.ensure()
            factory.reset(Store(state.database))
            state.reset_hermod()
            FaultSet(state.path).clear()
            print(f"smartid-lab: {state.path} is back to factory state")
            # A running Hermod applies its factory file as an operator would: by a refresh.
            return _refresh_hermod(state) if probe(state) else 0
        if args.command == "faults":
            on = FaultSet(state.path).active()
            for name, description in FAULTS.items():
                print(f"{name:30} {description}{' [on]' if name in on else ''}")
            return 0
        if args.command == "fault":
            FaultSet(state.path).switch(args.name, args.switch == "on")
            print(f"smartid-lab: fault {args.name} is {args.switch}")
            return 0
        document = status(state)
        if args.json:
            print(json.dumps(document, indent=2))
        else:
            print(f"running: {'yes' if document['running'] else 'no'}")
            for name, url in document["endpoints"].items():
                print(f"{name}: {url}")
            print(f"cm_pki: {document['cm_pki']} (CRLs and OCSP)")
        return 0 if document["running"] else 3
    except SmartIDError as exc:
        print(f"smartid-lab: {exc}", file=sys.stderr)
        return 2
