"""Drift (docs/checks.md): the state the site file declares and the state the target shows, rendered
the same way, one `key = value` line per declared value, and compared as one unified diff.

Keys are fully qualified (`process."Lock user".task."Load related credentials".data_pool`) so that
every line of the diff names its object without context. Secrets are never rendered: a password
shows as "accepted" or "refused", a key or token as whether it matches (by fingerprint).
`compare()` is pure: the drift check reads the live state into a `LiveState` first.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from smartid.hermod import HermodClient
from smartid.idm import CertificateAuthority, InstalledPackage, MessagingServer, Process
from smartid.masking import Secret
from smartid.site import Site
from smartid.verify.readings import BundleCertificate

__all__ = [
    "ABSENT",
    "Declared",
    "Item",
    "LiveState",
    "compare",
    "not_compared",
    "render",
    "unified_diff",
]

ABSENT = "<absent>"
_BARE = re.compile(r"[A-Za-z0-9_-]+\Z")
# add(key, declared value, live value)
_Add = Callable[[str, object, object], None]


@dataclass(frozen=True)
class Item:
    """One declared value and what the target shows for it, both rendered."""

    key: str
    declared: str
    live: str

    @property
    def differs(self) -> bool:
        return self.declared != self.live


@dataclass(frozen=True)
class Declared:
    """What the site declares that must be read from files first."""

    package_sha256: str | None = None
    hermod_ca: tuple[BundleCertificate, ...] = ()
    api_key: Secret | None = None  # base64(client-id:key): IDM's messaging token
    hermod_key: Secret | None = None  # the IDM client's key in Hermod


@dataclass(frozen=True)
class LiveState:
    """What the target shows, as read by the drift check; None where its source does not show
    it (the configuration download lists no packages and no truststore), and those values are
    not compared."""

    admin_password_accepted: bool
    packages: Mapping[str, InstalledPackage] | None
    certificate_authorities: Mapping[str, CertificateAuthority] | None
    messaging_servers: Mapping[str, MessagingServer] | None
    hermod_user_accepted: bool | None
    truststore: frozenset[str] | None  # sha256 of each entry
    processes: Mapping[str, Process] | None
    hermod_clients: Mapping[str, HermodClient] | None  # None: application.yml not known
    # Where no packages are listed: the package file's objects the target lacks, if known.
    package_objects_missing: tuple[str, ...] | None = None


def _key(*parts: str) -> str:
    return ".".join(p if _BARE.match(p) else json.dumps(p) for p in parts)


def _value(value: object) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _accepted(value: bool | None) -> str:
    return ABSENT if value is None else ("accepted" if value else "refused")


def compare(site: Site, declared: Declared, live: LiveState) -> list[Item]:
    """Every value the site declares, with the live value beside it, in the guide's order."""
    items: list[Item] = []

    def add(key: str, want: object, have: object) -> None:
        items.append(Item(key, _value(want), _value(have)))

    if site.idm is not None:
        items.append(
            Item(
                _key("idm", "user", site.idm.admin_user, "password"),
                "accepted",
                _accepted(live.admin_password_accepted),
            )
        )
    _package(site, declared, live, add)
    _certificate_authority(site, live, add)
    _messaging(site, declared, live, add, items)
    for binding in site.bindings if live.processes is not None else ():
        process = live.processes.get(binding.process) if live.processes is not None else None
        task = process.task(binding.task) if process is not None else None
        base = ("process", binding.process, "task", binding.task)
        add(_key(*base, "data_pool"), binding.data_pool, task.data_pool if task else None)
        add(_key(*base, "sub_process"), binding.sub_process, task.sub_process if task else None)
    return items


def _package(site: Site, declared: Declared, live: LiveState, add: _Add) -> None:
    if site.package is None:
        return
    name = site.package.name
    if live.packages is None:
        missing = live.package_objects_missing
        if missing is not None:
            shown = "all present" if not missing else "missing: " + ", ".join(missing)
            add(_key("package", name, "objects"), "all present", shown)
        return
    installed = live.packages.get(name)
    add(_key("package", name, "installed"), True, installed is not None)
    if site.package.version is not None:
        add(_key("package", name, "version"), site.package.version, _get(installed, "version"))
    if declared.package_sha256 is not None:
        add(_key("package", name, "sha256"), declared.package_sha256, _get(installed, "sha256"))


def _certificate_authority(site: Site, live: LiveState, add: _Add) -> None:
    cm = site.certificate_manager
    if cm is None or live.certificate_authorities is None:
        return
    ca = live.certificate_authorities.get(cm.ca_name)
    base = ("certificate_authority", cm.ca_name)
    add(_key(*base, "description"), cm.description, _get(ca, "description"))
    add(_key(*base, "enabled"), True, _get(ca, "enabled"))
    if cm.url is not None:
        connection = ca.connection if ca is not None else None
        add(_key(*base, "connection", "url"), cm.url, connection.url if connection else None)
    if cm.certificate_types:
        present = set(ca.certificate_types) if ca is not None else set()
        shown = [t for t in cm.certificate_types if t in present]
        add(_key(*base, "certificate_types"), list(cm.certificate_types), shown)


def _messaging(
    site: Site, declared: Declared, live: LiveState, add: _Add, items: list[Item]
) -> None:
    messaging = site.messaging
    if messaging is None:
        return
    if live.messaging_servers is not None:
        _messaging_server(site, declared, live.messaging_servers, add, items)
    items.append(
        Item(
            _key("idm", "user", messaging.hermod_user, "password"),
            "accepted",
            _accepted(live.hermod_user_accepted),
        )
    )
    for cert in declared.hermod_ca if live.truststore is not None else ():
        assert live.truststore is not None
        shown = f"sha256 {cert.sha256[:16]}"
        present = cert.sha256 in live.truststore
        add(_key("idm", "truststore", cert.subject), shown, shown if present else None)
    if live.hermod_clients is None:
        return
    client = live.hermod_clients.get(messaging.client_id)
    where = ("hermod", "allowed-clients", messaging.client_id)
    key_text = f"the key of client '{messaging.client_id}'"
    if client is None:
        key_seen = ABSENT
    elif declared.hermod_key is None or client.key == declared.hermod_key:
        key_seen = key_text
    else:
        key_seen = "another key"
    items.append(Item(_key(*where, "key"), key_text, key_seen))
    add(_key(*where, "callback-url"), messaging.callback_url, _get(client, "callback_url"))
    add(_key(*where, "callback-user"), messaging.hermod_user, _get(client, "callback_user"))
    password = "the hermod user's password"  # noqa: S105 - a description, not a value
    basic = client.callback_basic_auth if client is not None else None
    if basic is None:
        seen_password = ABSENT
    else:
        given = basic.reveal().partition(":")[2]
        same = Secret(given, "callback-basic-auth") == messaging.hermod_password.get()
        seen_password = password if same else "another password"
    items.append(Item(_key(*where, "callback-password"), password, seen_password))


def _messaging_server(
    site: Site,
    declared: Declared,
    servers: Mapping[str, MessagingServer],
    add: _Add,
    items: list[Item],
) -> None:
    messaging = site.messaging
    assert messaging is not None
    server = servers.get(messaging.server)
    base = ("messaging_server", messaging.server)
    add(_key(*base, "url"), f"{messaging.url}/command", _get(server, "url"))
    add(_key(*base, "lifespan"), messaging.lifespan, _get(server, "lifespan"))
    token = f"X-Api-Key of client '{messaging.client_id}'"
    if server is None:
        seen = ABSENT
    elif not server.authentication_token_set:
        seen = "not set"
    elif declared.api_key is None:
        seen = f"set; no key of client '{messaging.client_id}' is known to compare"
    else:
        seen = token if server.token_matches(declared.api_key) else "another token"
    items.append(Item(_key(*base, "authentication_token"), token, seen))


def not_compared(site: Site, live: LiveState) -> list[str]:
    """What the site declares that the live state's source does not show, so drift cannot
    compare it."""
    unshown = []
    if site.package is not None and live.packages is None:
        unshown.append(f"package {site.package.name} version and sha256")
    if site.certificate_manager is not None and live.certificate_authorities is None:
        unshown.append("the certificate authority")
    if site.messaging is not None and live.messaging_servers is None:
        unshown.append("the messaging server")
    if site.messaging is not None and site.messaging.ca_bundle and live.truststore is None:
        unshown.append("IDM's truststore")
    if site.bindings and live.processes is None:
        unshown.append("the task bindings")
    return unshown


def _get(obj: object, name: str) -> object:
    return getattr(obj, name) if obj is not None else None


def render(items: Sequence[Item], side: str) -> list[str]:
    """One `key = value` line per item, of the "declared" or the "live" side."""
    return [f"{item.key} = {item.declared if side == 'declared' else item.live}" for item in items]


def unified_diff(items: Sequence[Item], *, live_name: str = "live") -> str:
    """The unified diff from the declared rendering to the live one; "" when they agree."""
    lines = difflib.unified_diff(
        render(items, "declared"),
        render(items, "live"),
        fromfile="declared (site file)",
        tofile=live_name,
        lineterm="",
        n=0,
    )
    return "\n".join(lines)
