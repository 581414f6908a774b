"""A bad site file stops the run before any test: one sentence naming file and key, exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartid.errors import SecretError, SiteError
from smartid.lab.target import lab_site
from smartid.site import load_site, parse_site
from tests.helpers import ROOT, cost, run_suite
from tests.lab import new_state

SECRET = "Sup3r-secret-value-42"

REMOTE_HEAD = """
target = "remote"
[idm]
admin_url = "https://idm.test:8443/idm-admin"
operator_url = "https://idm.test:8443/idm-operator"
"""

MESSAGING = (
    REMOTE_HEAD
    + 'admin_password = { env = "P" }\n[messaging]\nurl = "https://h:20400/hermod/rest"\n'
    + 'callback_url = "https://i/idm-operator/ws/hermod"\nhermod_password = { env = "P" }\n'
)

# (id, site text, files to create beside it, environment, key named, words of the problem)
BAD_SITES = [
    ("not-toml", 'target = "remote"\n[idm\n', {}, {}, None, "not valid TOML"),
    (
        "unknown-key",
        REMOTE_HEAD + 'admin_password = { env = "P" }\ncolour = "blue"\n',
        {},
        {"P": SECRET},
        None,
        "unknown key 'colour' in [idm]",
    ),
    (
        "wrong-type",
        REMOTE_HEAD + 'admin_password = { env = "P" }\ntenant_id = "one"\n',
        {},
        {"P": SECRET},
        "idm.tenant_id",
        "must be a whole number",
    ),
    ("missing-required", REMOTE_HEAD, {}, {}, "idm.admin_password", "required key is missing"),
    *[
        (
            case_id,
            REMOTE_HEAD
            + 'admin_password = { env = "P" }\n[certificate_manager]\nurl = "https://cm:8444/cm"\n'
            + f'ping_url = "{ping_url}"\n',
            {},
            {"P": SECRET},
            "certificate_manager.ping_url",
            problem,
        )
        for case_id, ping_url, problem in [
            ("ping-url-http", "http://cm:8444/cm/api/v1/ping", "must be an https:// URL"),
            (
                "ping-url-lab-placeholder-on-remote",
                "{lab_cm}/api/v1/ping",
                "uses {lab_cm} but the site's target is not the lab",
            ),
        ]
    ],
    (
        "generateclient-over-the-network",
        REMOTE_HEAD
        + 'admin_password = { env = "P" }\n[messaging]\nurl = "https://h:20400/hermod/rest"\n'
        + 'callback_url = "https://i/idm-operator/ws/hermod"\nhermod_password = { env = "P" }\n'
        + 'generateclient_url = "http://hermod.example:20400/hermod/rest/util/generateclient"\n',
        {},
        {"P": SECRET},
        "messaging.generateclient_url",
        "may be http:// only on the Hermod host itself",
    ),
    (
        "generateclient-wrong-page",
        REMOTE_HEAD
        + 'admin_password = { env = "P" }\n[messaging]\nurl = "https://h:20400/hermod/rest"\n'
        + 'callback_url = "https://i/idm-operator/ws/hermod"\nhermod_password = { env = "P" }\n'
        + 'generateclient_url = "http://localhost:20400/hermod/rest"\n',
        {},
        {"P": SECRET},
        "messaging.generateclient_url",
        "must end with /util/generateclient",
    ),
    *[
        (
            case_id,
            MESSAGING + tail,
            {},
            {"P": SECRET},
            key,
            problem,
        )
        for case_id, tail, key, problem in [
            (
                "refresh-command-and-url",
                'refresh_command = ["systemctl", "reload", "hermod"]\n'
                'refresh_url = "https://h:20400/hermod/rest/util/refresh"\n',
                "messaging",
                "'refresh_command' and 'refresh_url' are two ways to refresh Hermod: give one",
            ),
            (
                "refresh-url-http-over-the-network",
                'refresh_url = "http://hermod.example:20400/hermod/rest/util/refresh"\n',
                "messaging.refresh_url",
                "may be http:// only on the Hermod host itself",
            ),
            (
                "refresh-url-not-a-url",
                'refresh_url = "ftp://h/refresh"\n',
                "messaging.refresh_url",
                "must be an https:// URL",
            ),
            (
                "refresh-url-lab-placeholder-on-remote",
                'refresh_url = "{lab_hermod}/util/refresh"\n',
                "messaging.refresh_url",
                "uses {lab_hermod} but the site's target is not the lab",
            ),
            (
                "refresh-command-a-string",
                'refresh_command = "systemctl reload hermod"\n',
                "messaging.refresh_command",
                "must be an argument list",
            ),
            (
                "refresh-command-empty",
                "refresh_command = []\n",
                "messaging.refresh_command",
                "must name the program to run",
            ),
            (
                "refresh-command-not-strings",
                'refresh_command = ["systemctl", 1]\n',
                "messaging.refresh_command[1]",
                "must be text",
            ),
            (
                "refresh-timeout-zero",
                "refresh_timeout = 0\n",
                "messaging.refresh_timeout",
                "greater than 0",
            ),
            (
                "refresh-timeout-a-string",
                'refresh_timeout = "a minute"\n',
                "messaging.refresh_timeout",
                "must be a number",
            ),
            (
                "callback-suffix-without-type",
                'callback_suffix = "/callback"\n',
                "messaging.callback_suffix",
                "must hold <type> once",
            ),
            (
                "callback-suffix-not-a-path",
                'callback_suffix = "callback/<type>?x=1"\n',
                "messaging.callback_suffix",
                "must be a URL path such as '/callback/<type>'",
            ),
            (
                "callback-suffix-climbs-up",
                'callback_suffix = "/../<type>"\n',
                "messaging.callback_suffix",
                "must be a URL path",
            ),
        ]
    ],
    (
        "lab-section-on-remote",
        REMOTE_HEAD + 'admin_password = { env = "P" }\n[lab]\ndocumented_only = true\n',
        {},
        {"P": SECRET},
        "lab",
        'only a site with target = "lab" has a [lab] section',
    ),
    (
        "secret-env-unset",
        REMOTE_HEAD + 'admin_password = { env = "SMARTID_TEST_UNSET" }\n',
        {},
        {},
        "idm.admin_password",
        "environment variable SMARTID_TEST_UNSET is not set",
    ),
    (
        "secret-file-missing",
        REMOTE_HEAD + 'admin_password = { file = "nope.txt" }\n',
        {},
        {},
        "idm.admin_password",
        "nope.txt does not exist",
    ),
    (
        "secret-file-key-missing",
        REMOTE_HEAD + 'admin_password = { file = "s.json", key = "admin" }\n',
        {"s.json": json.dumps({"other": SECRET})},
        {},
        "idm.admin_password",
        "has no string value under key 'admin'",
    ),
    (
        "secret-file-not-json",
        REMOTE_HEAD + 'admin_password = { file = "s.json", key = "admin" }\n',
        {"s.json": '{"admin": "' + SECRET + '"'},
        {},
        "idm.admin_password",
        "is not valid JSON",
    ),
    (
        "url-with-a-password",
        REMOTE_HEAD.replace(
            '"https://idm.test:8443/idm-admin"', f'"https://admin:{SECRET}@idm.test:8443/idm-admin"'
        )
        + 'admin_password = { env = "P" }\n',
        {},
        {"P": SECRET},
        "idm.admin_url",
        "must not carry a user or password (got 'https://…@idm.test:8443/idm-admin')",
    ),
    (
        "url-not-https",
        REMOTE_HEAD.replace("https://idm.test:8443/idm-admin", "http://idm.test/a")
        + 'admin_password = { env = "P" }\n',
        {},
        {"P": SECRET},
        "idm.admin_url",
        "must be an https:// URL",
    ),
    (
        "ca-bundle-missing",
        REMOTE_HEAD + 'admin_password = { env = "P" }\nca_bundle = "none.pem"\n',
        {},
        {"P": SECRET},
        "idm.ca_bundle",
        "none.pem does not exist",
    ),
    (
        "remote-without-url",
        'target = "remote"\n[idm]\noperator_url = "https://idm.test:8443/idm-operator"\n'
        'admin_password = { env = "P" }\n',
        {},
        {"P": SECRET},
        "idm.admin_url",
        'required when target is "remote"',
    ),
    (
        "secret-too-short",
        REMOTE_HEAD + 'admin_password = { env = "P" }\n',
        {},
        {"P": "abc"},
        "idm.admin_password",
        "shorter than 6 characters",
    ),
    (
        "waiver-bad-date",
        REMOTE_HEAD + 'admin_password = { env = "P" }\n[[waivers]]\n'
        'check = "TLS-001"\nreason = "r"\nowner = "o"\nuntil = "soon"\n',
        {},
        {"P": SECRET},
        "waivers[0].until",
        "must be a TOML date such as 2026-12-31",
    ),
]


def _write(tmp_path: Path, text: str, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    site = tmp_path / "site.toml"
    site.write_text(text)
    return site


@pytest.mark.parametrize(
    ("text", "files", "env", "key", "problem"),
    [case[1:] for case in BAD_SITES],
    ids=[case[0] for case in BAD_SITES],
)
def test_bad_site_is_one_sentence_naming_file_and_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    files: dict[str, str],
    env: dict[str, str],
    key: str | None,
    problem: str,
) -> None:
    site = _write(tmp_path, text, files)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SiteError) as caught:
        load_site(site)
    message = str(caught.value)
    assert message.startswith(f"{site}: ")
    if key:
        assert f"key '{key}'" in message
    assert problem in message
    assert "\n" not in message
    assert SECRET not in message


@pytest.mark.e2e
@pytest.mark.parametrize(
    "case", ["unknown-key", "secret-env-unset", "secret-file-not-json", "url-not-https"]
)
def test_suite_run_with_bad_site_exits_4_without_traceback(
    tmp_path: Path, suite_env: dict[str, str], case: str
) -> None:
    _, text, files, env, _key, problem = next(c for c in BAD_SITES if c[0] == case)
    site = _write(tmp_path, text, files)
    run = run_suite("-m", "setup", f"--site={site}", env={**suite_env, **env})
    assert run.returncode == 4, run.output
    assert problem in run.output
    assert "Traceback" not in run.output
    assert SECRET not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, run.output


def test_secret_repr_and_str_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P", SECRET)
    site = load_site(_write(tmp_path, REMOTE_HEAD + 'admin_password = { env = "P" }\n', {}))
    assert site.idm is not None
    secret = site.idm.admin_password.get()
    assert secret.reveal() == SECRET
    for shown in (str(secret), repr(secret), f"{secret}", repr(site), str(site.model_dump())):
        assert SECRET not in shown


def test_secret_from_toml_file_with_key(tmp_path: Path) -> None:
    site = load_site(
        _write(
            tmp_path,
            REMOTE_HEAD + 'admin_password = { file = "s.toml", key = "pw" }\n',
            {"s.toml": f'pw = "{SECRET}"\n'},
        )
    )
    assert site.idm is not None
    assert site.idm.admin_password.get().reveal() == SECRET


def test_whole_file_secret_is_stripped(tmp_path: Path) -> None:
    site = load_site(
        _write(
            tmp_path,
            REMOTE_HEAD + 'admin_password = { file = "pw.txt" }\n',
            {"pw.txt": SECRET + "\n"},
        )
    )
    assert site.idm is not None
    assert site.idm.admin_password.get().reveal() == SECRET


@pytest.mark.parametrize("name", ["lab.toml", "example.toml"])
def test_shipped_site_files_are_valid(tmp_path: Path, name: str) -> None:
    site = parse_site(ROOT / "sites" / name, lab_state=tmp_path)
    assert site.name == name.removesuffix(".toml")


def test_example_site_names_every_key() -> None:
    """sites/example.toml documents every key of the site model."""
    from smartid import site as model

    text = (ROOT / "sites" / "example.toml").read_text()
    sections = [
        model.IdmSection,
        model.PackageSection,
        model.CertificateManagerSection,
        model.MessagingSection,
        model.TlsPolicy,
        model.Endpoint,
        model.Waiver,
        model.BindingEntry,
        model.LabSection,
        model.Site,
    ]
    missing = [
        f"{cls.__name__}.{field}"
        for cls in sections
        for field in cls.model_fields
        if f"{field} =" not in text
        and f"[{field}]" not in text
        and f"[[{field}]]" not in text
        and f"[{field}." not in text
    ]
    assert missing == []


def test_lab_placeholder_outside_lab_is_refused(tmp_path: Path) -> None:
    text = REMOTE_HEAD + 'admin_password = { file = "{lab_state}/secrets.json", key = "a" }\n'
    with pytest.raises(SiteError, match=r"idm\.admin_password\.file"):
        parse_site(_write(tmp_path, text, {}))


def test_default_password_probe_follows_target(tmp_path: Path) -> None:
    remote = parse_site(_write(tmp_path, REMOTE_HEAD + 'admin_password = { env = "P" }\n', {}))
    assert remote.probe_default_password is False
    lab = parse_site(ROOT / "sites" / "lab.toml", lab_state=tmp_path)
    assert lab.probe_default_password is True


def test_secret_error_is_a_site_error() -> None:
    assert issubclass(SecretError, SiteError)


@pytest.mark.parametrize(
    ("suffix", "endpoint"),
    [
        pytest.param(None, "https://i/idm-operator/ws/hermod/callback/ping", id="default"),
        pytest.param("/<type>", "https://i/idm-operator/ws/hermod/ping", id="type-only"),
        pytest.param("/cb/<type>/in", "https://i/idm-operator/ws/hermod/cb/ping/in", id="inside"),
    ],
)
def test_the_callback_endpoint_is_callback_url_and_suffix(
    tmp_path: Path, suffix: str | None, endpoint: str
) -> None:
    line = f'callback_suffix = "{suffix}"\n' if suffix else ""
    site = parse_site(_write(tmp_path, MESSAGING + line, {}))
    assert site.messaging is not None
    assert site.messaging.callback_endpoint("ping") == endpoint


def test_refresh_settings_have_their_defaults(tmp_path: Path) -> None:
    site = parse_site(_write(tmp_path, MESSAGING, {}))
    assert site.messaging is not None
    assert (site.messaging.refresh_command, site.messaging.refresh_url) == (None, None)
    assert site.messaging.refresh_timeout == 60.0
    assert site.messaging.callback_suffix == "/callback/<type>"


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('refresh_command = ["systemctl", "reload", "hermod"]', id="command"),
        pytest.param('refresh_url = "https://h:20400/hermod/rest/util/refresh"', id="https"),
        pytest.param('refresh_url = "http://127.0.0.1:20400/hermod/rest/util/refresh"', id="lo"),
    ],
)
def test_one_way_to_refresh_hermod_is_accepted(tmp_path: Path, line: str) -> None:
    assert parse_site(_write(tmp_path, MESSAGING + line + "\n", {})).messaging is not None


def test_the_lab_site_pings_the_lab_cm(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    site = lab_site(parse_site(ROOT / "sites" / "lab.toml", state.path), state)
    assert site.certificate_manager is not None
    assert site.certificate_manager.ping_url == f"{state.endpoints()['cm']}/api/v1/ping"


DEEP = 100_000
MIB = 1024 * 1024
# (id, site text, files beside it, key named, words of the problem)
HOSTILE_SITES: list[tuple[str, bytes, dict[str, bytes], str | None, str]] = [
    (
        "toml-deep-arrays",
        b'target = "remote"\nx = ' + b"[" * DEEP + b"]" * DEEP + b"\n",
        {},
        None,
        "the site file nests arrays or tables deeper than 32 levels",
    ),
    (
        "toml-deep-inline-tables",
        b'target = "remote"\nx = ' + b"{a=" * DEEP + b"1" + b"}" * DEEP + b"\n",
        {},
        None,
        "the site file nests arrays or tables deeper than 32 levels",
    ),
    (
        "toml-arrays-past-the-bound",
        b'target = "remote"\n[idm]\nx = ' + b"[" * 40 + b"]" * 40 + b"\n",
        {},
        "idm.x",
        "the site file nests deeper than 32 levels",
    ),
    (
        "toml-deep-table-header",
        b'target = "remote"\n[' + b".".join([b"a"] * 5000) + b"]\n",
        {},
        "a" + ".a" * 31,
        "the site file nests deeper than 32 levels",
    ),
    (
        "site-not-utf8",
        b'target = "remote"\n# caf\xe9\n',
        {},
        None,
        "the site file is not UTF-8 text: byte 0xe9 at offset 23",
    ),
    (
        "site-too-large",
        b'target = "remote"\n' + b"#" * (2 * MIB) + b"\n",
        {},
        None,
        f"the site file is {2 * MIB + 19} bytes, more than {MIB}",
    ),
    *[
        (
            case_id,
            (REMOTE_HEAD + f'admin_password = {{ file = "{name}", key = "admin" }}\n').encode(),
            {name: content},
            "idm.admin_password",
            problem,
        )
        for case_id, name, content, problem in [
            (
                "secret-json-deep",
                "s.json",
                b'{"admin": "' + SECRET.encode() + b'", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}",
                "s.json nests arrays or objects deeper than 32 levels",
            ),
            (
                "secret-json-past-the-bound",
                "s.json",
                b'{"admin": "' + SECRET.encode() + b'", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
                "s.json under key 'x' nests deeper than 32 levels",
            ),
            (
                "secret-toml-deep",
                "s.toml",
                b'admin = "' + SECRET.encode() + b'"\nx = ' + b"[" * DEEP + b"]" * DEEP,
                "s.toml nests arrays or tables deeper than 32 levels",
            ),
            (
                "secret-json-not-utf8",
                "s.json",
                b'{"admin": "\xff' + SECRET.encode() + b'"}',
                "s.json is not UTF-8 text: byte 0xff at offset 11",
            ),
            (
                "secret-json-too-large",
                "s.json",
                b'{"admin": "' + SECRET.encode() + b'", "x": "' + b"y" * (2 * MIB) + b'"}',
                f"s.json is {2 * MIB + 43} bytes, more than {MIB}",
            ),
            (
                "secret-toml-not-toml",
                "s.toml",
                b'admin = "' + SECRET.encode() + b"\n",
                "s.toml is not valid TOML",
            ),
        ]
    ],
]


def _write_bytes(tmp_path: Path, text: bytes, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    site = tmp_path / "site.toml"
    site.write_bytes(text)
    return site


@pytest.mark.parametrize(
    ("text", "files", "key", "problem"),
    [case[1:] for case in HOSTILE_SITES],
    ids=[case[0] for case in HOSTILE_SITES],
)
def test_hostile_site_or_secret_file_is_one_sentence_in_bounded_time_and_memory(
    tmp_path: Path, text: bytes, files: dict[str, bytes], key: str | None, problem: str
) -> None:
    site = _write_bytes(tmp_path, text, files)
    spent = cost(lambda: load_site(site))
    assert isinstance(spent.error, SiteError), spent.error
    message = str(spent.error)
    where = f"{site}: key '{key}': " if key else f"{site}: "
    assert message.startswith(where), message
    assert problem in message
    assert "\n" not in message
    assert SECRET not in message
    assert spent.seconds < 5, spent
    # Reading the file is the most it costs: the bound on its size bounds the memory too.
    assert spent.peak_bytes < 8 * MIB, spent


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["toml-deep-arrays", "secret-json-deep", "site-not-utf8"])
def test_suite_run_with_hostile_site_exits_4_in_one_sentence(
    tmp_path: Path, suite_env: dict[str, str], case: str
) -> None:
    _, text, files, _key, problem = next(c for c in HOSTILE_SITES if c[0] == case)
    site = _write_bytes(tmp_path, text, files)
    run = run_suite("-m", "setup", f"--site={site}", env=suite_env, timeout=60)
    assert run.returncode == 4, run.output
    assert problem in run.output
    assert "Traceback" not in run.output
    assert "RecursionError" not in run.output
    assert SECRET not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, run.output


def _bindings_site(tmp_path: Path, entries: str) -> Path:
    return _write(
        tmp_path, REMOTE_HEAD + 'admin_password = { env = "P" }\n[processes]\n' + entries, {}
    )


GUIDE_IDS = [
    "Deactivate user/Deactivate related credentials",
    "Deactivate user/Load related credentials",
    "Reactivate user/Reactivate related credentials",
    "Reactivate user/Load related credentials",
    "Lock user/Lock related credentials",
    "Lock user/Load related credentials",
]


def test_without_binding_entries_the_site_has_the_guides_six(tmp_path: Path) -> None:
    site = parse_site(_bindings_site(tmp_path, ""))
    assert [binding.id for binding in site.bindings] == GUIDE_IDS


def test_one_binding_entry_overrides_its_default_and_keeps_the_other_five(
    tmp_path: Path,
) -> None:
    entry = (
        '[[processes.bindings]]\nprocess = "Lock user"\ntask = "Load related credentials"\n'
        'data_pool = "Archive"\nsub_process = "load archived credential(s)"\n'
    )
    site = parse_site(_bindings_site(tmp_path, entry))
    assert [binding.id for binding in site.bindings] == GUIDE_IDS
    changed = site.bindings[-1]
    assert (changed.data_pool, changed.sub_process) == ("Archive", "load archived credential(s)")
    assert site.bindings[0].data_pool == "Batch order"


def test_a_binding_entry_that_leaves_a_key_out_keeps_the_defaults_value(tmp_path: Path) -> None:
    entry = '[[processes.bindings]]\nprocess = "Lock user"\ntask = "Load related credentials"\n'
    entry += 'data_pool = "Archive"\n'
    site = parse_site(_bindings_site(tmp_path, entry))
    changed = site.bindings[-1]
    assert (changed.data_pool, changed.sub_process) == ("Archive", "load credential(s)")


def test_a_binding_entry_for_a_new_pair_adds_a_seventh(tmp_path: Path) -> None:
    entry = (
        '[[processes.bindings]]\nprocess = "Delete user"\ntask = "Revoke related credentials"\n'
        'data_pool = "Batch order"\nsub_process = "set credential status"\n'
    )
    site = parse_site(_bindings_site(tmp_path, entry))
    assert [binding.id for binding in site.bindings] == [
        *GUIDE_IDS,
        "Delete user/Revoke related credentials",
    ]


def test_a_disabled_binding_entry_drops_its_default(tmp_path: Path) -> None:
    entry = '[[processes.bindings]]\nprocess = "Lock user"\ntask = "Lock related credentials"\n'
    entry += "enabled = false\n"
    site = parse_site(_bindings_site(tmp_path, entry))
    assert [binding.id for binding in site.bindings] == [
        i for i in GUIDE_IDS if i != "Lock user/Lock related credentials"
    ]


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        pytest.param(
            '[[processes.bindings]]\nprocess = "Delete user"\ntask = "Revoke"\n'
            'data_pool = "Batch order"\n',
            "process 'Delete user' task 'Revoke' is not one of the guide's six bindings, so it "
            "needs 'sub_process'",
            id="new-pair-incomplete",
        ),
        pytest.param(
            '[[processes.bindings]]\nprocess = "Lock user"\ntask = "Lock related credentials"\n'
            '[[processes.bindings]]\nprocess = "Lock user"\ntask = "Lock related credentials"\n',
            "process 'Lock user' task 'Lock related credentials' is listed twice",
            id="twice",
        ),
    ],
)
def test_a_binding_entry_that_cannot_be_merged_is_refused(
    tmp_path: Path, entries: str, problem: str
) -> None:
    with pytest.raises(SiteError) as caught:
        parse_site(_bindings_site(tmp_path, entries))
    assert caught.value.key == "processes.bindings"
    assert problem in str(caught.value)


def test_the_example_site_checks_the_guides_six_bindings(tmp_path: Path) -> None:
    site = parse_site(ROOT / "sites" / "example.toml", lab_state=tmp_path)
    assert [binding.id for binding in site.bindings] == GUIDE_IDS


# (id, lines added to a valid remote site's [idm] section or after it, key named, the sentence)
PLAIN_WORDS = [
    pytest.param(
        'admin_pasword = { env = "P" }\n',
        None,
        "unknown key 'admin_pasword' in [idm]; did you mean 'admin_password'?",
        id="typo-did-you-mean",
    ),
    pytest.param(
        '[[endpoints]]\nname = "a"\nurl = "https://a.test/"\nclient_auht = "none"\n',
        None,
        "unknown key 'client_auht' in [[endpoints]] number 1; did you mean 'client_auth'?",
        id="typo-in-an-array-of-tables",
    ),
    pytest.param(
        'colour = "blue"\n',
        None,
        "unknown key 'colour' in [idm]",
        id="unknown-key-without-a-close-match",
    ),
    pytest.param(
        f'hermod_password = "{SECRET}"\n',
        None,
        "unknown key 'hermod_password' in [idm]",
        id="a-key-of-another-section",
    ),
    pytest.param(
        'tenant_id = "one"\n', "idm.tenant_id", "must be a whole number", id="whole-number"
    ),
    pytest.param(
        'probe_default_password = "maybe"\n',
        "idm.probe_default_password",
        "must be true or false",
        id="true-or-false",
    ),
    pytest.param("admin_user = 7\n", "idm.admin_user", "must be text", id="text"),
    pytest.param(
        'admin_api = "rest"\n', "idm.admin_api", "must be 'contract' or 'none'", id="one-of"
    ),
    pytest.param(
        '[certificate_manager]\nurl = "https://cm:8444/cm"\ntrust_certs = "ca.pem"\n',
        "certificate_manager.trust_certs",
        "must be a list of text values",
        id="list-of-text",
    ),
    *[
        pytest.param(
            f'[[waivers]]\ncheck = "{check}"\nreason = "r"\nowner = "o"\nuntil = 2026-12-31\n',
            "waivers[0].check",
            "must be a check id such as 'TLS-005' (capital letters, '-', three digits), or a "
            "check id and one of its cases in brackets such as 'TLS-005[hermod]'",
            id=f"waiver-{name}",
        )
        for name, check in [
            ("id", "tls5"),
            ("case-unclosed", "TLS-005[hermod"),
            ("case-empty", "TLS-005[]"),
            ("case-without-id", "[hermod]"),
        ]
    ],
    pytest.param(
        '[package]\nsha256 = "abc"\n',
        "package.sha256",
        "must be a sha256 written as 64 lowercase hexadecimal digits",
        id="sha256",
    ),
    pytest.param(
        "[tls]\nexpiry_warn_days = -1\n", "tls.expiry_warn_days", "must be at least 0", id="bound"
    ),
    pytest.param(
        '[processes]\nbindings = "Lock user"\n',
        "processes.bindings",
        "must be a list of [[processes.bindings]] tables",
        id="list-of-tables",
    ),
    pytest.param(
        'ca_bundle = "certs/../none.pem"\n',
        "idm.ca_bundle",
        "none.pem (written as 'certs/../none.pem') does not exist",
        id="path-normalized",
    ),
]


@pytest.mark.parametrize(("lines", "key", "sentence"), PLAIN_WORDS)
def test_a_problem_is_told_in_the_administrators_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str, key: str | None, sentence: str
) -> None:
    monkeypatch.setenv("P", SECRET)
    site = _write(tmp_path, REMOTE_HEAD + 'admin_password = { env = "P" }\n' + lines, {})
    with pytest.raises(SiteError) as caught:
        load_site(site)
    message = str(caught.value)
    where = f"{site}: key '{key}': " if key else f"{site}: "
    assert message.startswith(where), message
    assert sentence in message
    assert "\n" not in message
    assert SECRET not in message
    for pydantic_words in (
        "Input should",
        "valid dictionary",
        "instance of",
        "^",
        "errors.pydantic",
    ):
        assert pydantic_words not in message


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f'"{SECRET}"', id="text"),
        pytest.param("12345678", id="number"),
        pytest.param(f'["{SECRET}"]', id="list"),
    ],
)
def test_a_secret_given_as_a_plain_value_is_refused_without_echoing_it(
    tmp_path: Path, value: str
) -> None:
    site = _write(tmp_path, REMOTE_HEAD + f"admin_password = {value}\n", {})
    with pytest.raises(SiteError) as caught:
        parse_site(site)
    assert str(caught.value) == (
        f"{site}: key 'idm.admin_password': a secret must be {{ env = \"...\" }} or "
        '{ file = "..." } (with key = "..." for a JSON file), not a plain value'
    )
    assert SECRET not in str(caught.value)
    assert "12345678" not in str(caught.value)


def test_every_problem_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        'target = "remote"\n[idm]\nadmin_url = "https://idm.test:8443/idm-admin"\n'
        f'admin_pasword = "{SECRET}"\ntenant_id = "one"\n'
    )
    site = _write(tmp_path, text, {})
    with pytest.raises(SiteError) as caught:
        parse_site(site)
    assert caught.value.lines == (
        f"{site}: key 'idm.operator_url': required when target is \"remote\"",
        f"{site}: key 'idm.tenant_id': must be a whole number",
        f"{site}: key 'idm.admin_password': required key is missing",
        f"{site}: unknown key 'admin_pasword' in [idm]; did you mean 'admin_password'?",
    )
    assert str(caught.value) == "\n".join(caught.value.lines)
    assert SECRET not in str(caught.value)
    assert "more problems" not in str(caught.value)


def test_every_unusable_file_and_secret_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        REMOTE_HEAD
        + 'admin_password = { env = "SMARTID_TEST_UNSET" }\nca_bundle = "none.pem"\n'
        + '[messaging]\nurl = "https://h:20400/hermod/rest"\n'
        + 'callback_url = "https://i/idm-operator/ws/hermod"\nhermod_password = { file = "pw" }\n'
    )
    site = _write(tmp_path, text, {})
    with pytest.raises(SiteError) as caught:
        load_site(site)
    assert [line.split(": ", 2)[1] for line in caught.value.lines] == [
        "key 'idm.ca_bundle'",
        "key 'idm.admin_password'",
        "key 'messaging.hermod_password'",
    ]


@pytest.mark.e2e
def test_suite_run_with_three_problems_prints_three_error_lines_and_exits_4(
    tmp_path: Path, suite_env: dict[str, str]
) -> None:
    text = (
        REMOTE_HEAD
        + f'admin_password = "{SECRET}"\nadmin_pasword = {{ env = "P" }}\ntenant_id = "one"\n'
    )
    site = _write(tmp_path, text, {})
    run = run_suite("-m", "setup", f"--site={site}", env=suite_env)
    assert run.returncode == 4, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 3, run.output
    assert "did you mean 'admin_password'?" in run.output
    assert "not a plain value" in run.output
    assert "must be a whole number" in run.output
    assert SECRET not in run.output
    assert "Traceback" not in run.output
