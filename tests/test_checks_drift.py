"""Drift is the declared state against the live state as one unified diff, one fully qualified
`key = value` line per declared value, secrets shown only as accepted or matching."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from smartid.hermod import HermodClient, generate_key
from smartid.idm import CertificateAuthority, InstalledPackage, MessagingServer, Process, Task
from smartid.idm.models import CAConnection
from smartid.masking import Secret
from smartid.site import Site, load_site
from smartid.verify.drift import ABSENT, Declared, LiveState, compare, render, unified_diff
from smartid.verify.readings import BundleCertificate

HERMOD_PASSWORD = "Hermod-passw0rd-for-tests"
ADMIN_PASSWORD = "Admin-passw0rd-for-tests"
KEY = Secret(generate_key(), "test key")
SHA = "ab" * 32
ROOT_CA = BundleCertificate("CN=Test Root", "cd" * 32)
# The guide's bindings the site below drops, so that it declares the one binding under test.
OTHER_BINDINGS = [
    ("Deactivate user", "Deactivate related credentials"),
    ("Deactivate user", "Load related credentials"),
    ("Reactivate user", "Reactivate related credentials"),
    ("Reactivate user", "Load related credentials"),
    ("Lock user", "Lock related credentials"),
]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("ADMIN_PW", ADMIN_PASSWORD)
    monkeypatch.setenv("HERMOD_PW", HERMOD_PASSWORD)
    (tmp_path / "application.yml").write_text("application: {}\n")
    path = tmp_path / "site.toml"
    path.write_text(
        """
target = "remote"
[idm]
admin_url = "https://idm.test:8443/idm-admin"
operator_url = "https://idm.test:8443/idm-operator"
admin_password = { env = "ADMIN_PW" }
[package]
version = "1.0.0"
[certificate_manager]
url = "https://cm.test:8444/cm"
certificate_types = ["Smart ID user card"]
[messaging]
url = "https://hermod.test:20400/hermod/rest"
callback_url = "https://idm.test:8443/idm-operator/ws/hermod"
hermod_password = { env = "HERMOD_PW" }
application_yml = "application.yml"
[processes]
[[processes.bindings]]
process = "Lock user"
task = "Load related credentials"
data_pool = "Credentials"
sub_process = "load credential(s)"
"""
        + "".join(
            f'[[processes.bindings]]\nprocess = "{process}"\ntask = "{task}"\nenabled = false\n'
            for process, task in OTHER_BINDINGS
        ),
        encoding="utf-8",
    )
    return load_site(path)


def _token_sha(token: Secret) -> str:
    return hashlib.sha256(token.reveal().encode()).hexdigest()


def _declared() -> Declared:
    api_key = HermodClient(client_id="idm", key=KEY).api_key
    return Declared(package_sha256=SHA, hermod_ca=(ROOT_CA,), api_key=api_key, hermod_key=KEY)


def _live(**changes: object) -> LiveState:
    api_key = HermodClient(client_id="idm", key=KEY).api_key
    live = LiveState(
        admin_password_accepted=True,
        packages={
            "SharedCredentials": InstalledPackage(
                name="SharedCredentials", version="1.0.0", sha256=SHA, installed_at="now"
            )
        },
        certificate_authorities={
            "Smart ID Certificate Manager": CertificateAuthority(
                name="Smart ID Certificate Manager",
                type="CM",
                description="Smart ID Certificate Manager",
                enabled=True,
                connection=CAConnection(
                    url="https://cm.test:8444/cm", keystore_file="idm.p12", sha256=SHA
                ),
                certificate_types=("Smart ID mobile", "Smart ID user card"),
                version=3,
            )
        },
        messaging_servers={
            "Smart ID Messaging": MessagingServer(
                name="Smart ID Messaging",
                url="https://hermod.test:20400/hermod/rest/command",
                lifespan=300,
                authentication_token_set=True,
                authentication_token_sha256=_token_sha(api_key),
                version=2,
            )
        },
        hermod_user_accepted=True,
        truststore=frozenset({ROOT_CA.sha256}),
        processes={
            "Lock user": Process(
                name="Lock user",
                id="lock",
                version=2,
                tasks=(
                    Task(
                        name="Load related credentials",
                        type="callActivity",
                        data_pool="Credentials",
                        sub_process="load credential(s)",
                    ),
                ),
            )
        },
        hermod_clients={
            "idm": HermodClient(
                client_id="idm",
                key=KEY,
                callback_url="https://idm.test:8443/idm-operator/ws/hermod",
                callback_basic_auth=Secret(f"hermod:{HERMOD_PASSWORD}", "test"),
            )
        },
    )
    return replace(live, **changes)


def test_a_deployment_as_declared_has_no_diff(site: Site) -> None:
    items = compare(site, _declared(), _live())
    assert [item.key for item in items if item.differs] == []
    assert unified_diff(items) == ""
    assert render(items, "declared") == render(items, "live")


def test_every_declared_value_is_one_fully_qualified_line(site: Site) -> None:
    lines = render(compare(site, _declared(), _live()), "declared")
    assert lines == [
        "idm.user.admin.password = accepted",
        "package.SharedCredentials.installed = true",
        'package.SharedCredentials.version = "1.0.0"',
        f'package.SharedCredentials.sha256 = "{SHA}"',
        'certificate_authority."Smart ID Certificate Manager".description = '
        '"Smart ID Certificate Manager"',
        'certificate_authority."Smart ID Certificate Manager".enabled = true',
        'certificate_authority."Smart ID Certificate Manager".connection.url = '
        '"https://cm.test:8444/cm"',
        'certificate_authority."Smart ID Certificate Manager".certificate_types = '
        '["Smart ID user card"]',
        'messaging_server."Smart ID Messaging".url = '
        '"https://hermod.test:20400/hermod/rest/command"',
        'messaging_server."Smart ID Messaging".lifespan = 300',
        "messaging_server.\"Smart ID Messaging\".authentication_token = X-Api-Key of client 'idm'",
        "idm.user.hermod.password = accepted",
        f'idm.truststore."CN=Test Root" = "sha256 {ROOT_CA.sha256[:16]}"',
        "hermod.allowed-clients.idm.key = the key of client 'idm'",
        'hermod.allowed-clients.idm.callback-url = "https://idm.test:8443/idm-operator/ws/hermod"',
        'hermod.allowed-clients.idm.callback-user = "hermod"',
        "hermod.allowed-clients.idm.callback-password = the hermod user's password",
        'process."Lock user".task."Load related credentials".data_pool = "Credentials"',
        'process."Lock user".task."Load related credentials".sub_process = "load credential(s)"',
    ]


def test_a_wrong_binding_shows_as_removed_and_added_lines(site: Site) -> None:
    process = _live().processes["Lock user"]
    task = replace_task(process.tasks[0], data_pool="Batch order")
    wrong = Process(name=process.name, id=process.id, version=3, tasks=(task,))
    diff = unified_diff(compare(site, _declared(), _live(processes={"Lock user": wrong})))
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == [
        '-process."Lock user".task."Load related credentials".data_pool = "Credentials"',
        '+process."Lock user".task."Load related credentials".data_pool = "Batch order"',
    ]
    assert diff.startswith("--- declared (site file)\n+++ live")


def replace_task(task: Task, **changes: str) -> Task:
    return Task.model_validate({**task.model_dump(), **changes})


@pytest.mark.parametrize(
    ("changes", "key", "seen"),
    [
        pytest.param(
            {"hermod_user_accepted": False}, "idm.user.hermod.password", "refused", id="password"
        ),
        pytest.param(
            {"truststore": frozenset()}, 'idm.truststore."CN=Test Root"', ABSENT, id="trust"
        ),
        pytest.param(
            {"packages": {}}, "package.SharedCredentials.installed", "false", id="package"
        ),
        pytest.param(
            {"hermod_clients": {}}, "hermod.allowed-clients.idm.key", ABSENT, id="Hermod client"
        ),
    ],
)
def test_a_missing_or_refused_value_is_named_as_such(
    site: Site, changes: dict[str, object], key: str, seen: str
) -> None:
    items = {item.key: item for item in compare(site, _declared(), _live(**changes))}
    assert items[key].live == seen


def test_secrets_show_only_whether_they_match(site: Site) -> None:
    other = Secret(generate_key(), "other key")
    wrong_token = HermodClient(client_id="idm", key=other).api_key
    server = _live().messaging_servers["Smart ID Messaging"]
    live = _live(
        messaging_servers={
            server.name: server.model_copy(
                update={"authentication_token_sha256": _token_sha(wrong_token)}
            )
        },
        hermod_clients={
            "idm": HermodClient(
                client_id="idm",
                key=other,
                callback_url="https://idm.test:8443/idm-operator/ws/hermod",
                callback_basic_auth=Secret("hermod:Some-other-passw0rd", "test"),
            )
        },
    )
    items = compare(site, _declared(), live)
    seen = {item.key.rsplit(".", 1)[-1]: item.live for item in items if item.differs}
    assert seen == {
        "authentication_token": "another token",
        "key": "another key",
        "callback-password": "another password",
    }
    text = unified_diff(items) + "\n".join(render(items, "declared"))
    for secret in (KEY.reveal(), other.reveal(), HERMOD_PASSWORD, "Some-other-passw0rd"):
        assert secret not in text
