"""Using the lab as the suite's target: start it when it is not running, and complete a lab
site with the lab's endpoints, CA bundle and officer keystore."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from smartid.errors import LabError
from smartid.lab.probe import probe, serves_documented_only
from smartid.lab.state import LabState
from smartid.site import LAB_CM_PLACEHOLDER, LAB_HERMOD_PLACEHOLDER, Site

__all__ = ["StartedLab", "ensure_running", "lab_site"]

START_TIMEOUT = 60.0


class StartedLab:
    """A lab process this run started, and must stop."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _same_mode(state: LabState, documented_only: bool) -> None:
    running = serves_documented_only(state)
    if running is not None and running != documented_only:
        served = "only what Nexus documents" if running else "the admin contract"
        wanted = "documented_only = true" if documented_only else "the admin contract"
        raise LabError(
            f"the lab in {state.path} runs and serves {served}, but the site asks for {wanted}: "
            "stop that lab or give this run another lab state"
        )


def ensure_running(state: LabState, *, documented_only: bool = False) -> StartedLab | None:
    """Start the lab unless it answers; a file lock keeps parallel runs from starting two. A lab
    that runs in the other mode (documented only, or with the admin contract) is an error."""
    if state.ports_file.exists() and probe(state):
        _same_mode(state, documented_only)
        return None  # running: nothing to create, nothing to lock
    # Imported here, as the lock is needed only to start a lab (it costs ~0.1 s of start-up).
    from filelock import FileLock, Timeout

    state.ensure()
    try:
        with FileLock(state.lock_file, timeout=START_TIMEOUT):
            if probe(state):
                _same_mode(state, documented_only)
                return None
            log = state.path / "lab.log"
            command = [sys.executable, "-m", "smartid.lab", "--state-dir", str(state.path), "serve"]
            if documented_only:
                command.append("--documented-only")
            with log.open("ab") as out:
                process = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            started = StartedLab(process, log)
            deadline = time.monotonic() + START_TIMEOUT
            while not probe(state, timeout=0.5):
                if process.poll() is not None:
                    raise LabError(
                        f"the lab in {state.path} exited with {process.returncode} "
                        f"while starting: {_tail(log)}"
                    )
                if time.monotonic() > deadline:
                    started.stop()
                    raise LabError(
                        f"the lab in {state.path} did not answer within "
                        f"{START_TIMEOUT:.0f} s: {_tail(log)}"
                    )
                time.sleep(0.05)
            return started
    except Timeout:
        raise LabError(
            f"another run holds {state.lock_file} for more than {START_TIMEOUT:.0f} s"
        ) from None


def _lab_url(url: str | None, placeholder: str, base: str) -> str | None:
    """A site URL with `placeholder` (`{lab_hermod}`, `{lab_cm}`) standing for the lab
    component's base URL `base`, filled in."""
    if url is None:
        return None
    return url.replace(placeholder, base, 1)


def lab_site(site: Site, state: LabState) -> Site:
    """The site with what the lab decides (URLs, CA bundle, officer keystore) filled in where the
    site file leaves it out, `{lab_hermod}` in Hermod's refresh URL and `{lab_cm}` in CM's ping
    URL expanded."""
    endpoints = state.endpoints()
    bundle = str(state.pki.ca_bundle)
    update: dict[str, object] = {}
    if site.idm is not None:
        update["idm"] = site.idm.model_copy(
            update={
                "admin_url": site.idm.admin_url or endpoints["idm_admin"],
                "operator_url": site.idm.operator_url or endpoints["idm_operator"],
                "ca_bundle": site.idm.ca_bundle or bundle,
            }
        )
    if site.package is not None and site.package.path is None:
        update["package"] = site.package.model_copy(update={"path": str(state.package_file)})
    if site.certificate_manager is not None:
        cm = site.certificate_manager
        update["certificate_manager"] = cm.model_copy(
            update={
                "url": cm.url or endpoints.get("cm"),
                "ping_url": _lab_url(cm.ping_url, LAB_CM_PLACEHOLDER, endpoints["cm"]),
                "ca_bundle": cm.ca_bundle or bundle,
                "officer_keystore": cm.officer_keystore or str(state.pki.officer.p12),
                "trust_certs": cm.trust_certs or [str(state.pki.ca_bundle)],
            }
        )
    if site.messaging is not None:
        messaging = site.messaging
        update["messaging"] = messaging.model_copy(
            update={
                "url": messaging.url or endpoints.get("hermod"),
                "ca_bundle": messaging.ca_bundle or bundle,
                "callback_url": messaging.callback_url or f"{endpoints['idm_operator']}/ws/hermod",
                "refresh_url": _lab_url(
                    messaging.refresh_url, LAB_HERMOD_PLACEHOLDER, endpoints["hermod"]
                ),
            }
        )
    filled = site.model_copy(update=update)
    filled._path = site.path
    return filled
