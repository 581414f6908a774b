"""Hermod's allowed-clients are read in both key styles, printed as generateclient prints them and
merged into application.yml without losing a comment, another client or the file's style."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Literal

import pytest

from smartid.hermod import (
    HermodClient,
    HermodConfigError,
    client_section,
    generate_key,
    merge_client,
    parse_clients,
)
from smartid.hermod.clients import read_config
from smartid.masking import Secret
from tests.helpers import cost

IDM_KEY = "1d" * 32
DA_KEY = "DA" * 32
NEW_KEY = "0e" * 32
PASSWORD = "Hermod-pass-1"
OPERATOR = "https://localhost:18443/idm-operator/ws/hermod"


def _client(
    client_id: str = "new",
    key: str = NEW_KEY,
    url: str | None = OPERATOR,
    basic: str | None = f"hermod:{PASSWORD}",
    group: str | None = None,
) -> HermodClient:
    return HermodClient(
        client_id,
        Secret(key, "test"),
        url,
        Secret(basic, "test") if basic is not None else None,
        group,
    )


IDM = _client("idm", IDM_KEY)
DA = _client("da", DA_KEY, url=None, basic=None, group="acme")

KEBAB_NESTED = f"""\
# Hermod configuration (cod-hermod.yml)
server:
  port: 20400   # documented port
application:
  # the clients allowed to call Hermod
  allowed-clients:
    # Identity Manager
    - client-id: idm
      key: "{IDM_KEY}"
      callback-url: {OPERATOR}  # operator endpoint
      callback-basic-auth: hermod:{PASSWORD}
    # Digital Access
    - client-id: da
      key: {DA_KEY}
      group: acme   # shared with IDM
      # end of da

  # device-facing URL
  public-url: https://hermod.example/ms
spring:
  datasource: {{url: 'jdbc:postgresql://db/hermod', username: hermod}}
"""

CAMEL_NESTED = f"""\
application:
  publicUrl: https://hermod.example/ms
  allowedClients:
  - clientId: idm   # IDM
    key: {IDM_KEY}
    callbackUrl: {OPERATOR}
    callbackBasicAuth: hermod:{PASSWORD}
  - clientId: da
    key: {DA_KEY}
    group: acme
"""

KEBAB_TOP = f"""\
allowed-clients:
    -   client-id: idm
        key: {IDM_KEY}
        callback-url: {OPERATOR}
        callback-basic-auth: 'hermod:{PASSWORD}'
    -   client-id: da
        key: {DA_KEY}
        group: acme
# the end
"""

CAMEL_TOP = f"""\
# older Hermod
allowedClients:
  - clientId: idm
    key: {IDM_KEY}
    callbackUrl: {OPERATOR}
    callbackBasicAuth: "hermod:{PASSWORD}"
  - clientId: da
    key: {DA_KEY}
    group: acme
"""

FILES = [
    pytest.param(KEBAB_NESTED, "kebab", id="kebab-under-application"),
    pytest.param(CAMEL_NESTED, "camel", id="camel-under-application"),
    pytest.param(KEBAB_TOP, "kebab", id="kebab-top-level"),
    pytest.param(CAMEL_TOP, "camel", id="camel-top-level"),
]


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


def _is_subsequence(lines: list[str], within: list[str]) -> bool:
    remaining = iter(within)
    return all(line in remaining for line in lines)


@pytest.mark.parametrize(("text", "style"), FILES)
def test_clients_are_read_in_either_key_style_and_place(text: str, style: str) -> None:
    assert parse_clients(text) == [IDM, DA]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty-file"),
        pytest.param("# nothing yet\n", id="only-comments"),
        pytest.param("application:\n  public-url: https://h/ms\n", id="no-list"),
        pytest.param("application:\n  allowed-clients:\n", id="empty-list"),
        pytest.param("allowedClients: []\n", id="empty-flow-list"),
    ],
)
def test_a_file_without_clients_gives_none(text: str) -> None:
    assert parse_clients(text) == []


def test_the_list_under_application_wins_over_a_top_level_one() -> None:
    text = f"allowed-clients:\n- client-id: top\n  key: {DA_KEY}\n" + CAMEL_NESTED
    assert [c.client_id for c in parse_clients(text)] == ["idm", "da"]


def test_api_key_is_base64_of_client_id_and_key() -> None:
    assert base64.b64decode(IDM.api_key.reveal()).decode() == f"idm:{IDM_KEY}"
    assert str(IDM.api_key) == "****"
    assert IDM.callback_user == "hermod"
    assert DA.callback_user is None


def test_generated_keys_are_fresh_64_hex() -> None:
    first, second = generate_key(), generate_key()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert first != second


@pytest.mark.parametrize(
    ("style", "first_key"), [("kebab", "client-id"), ("camel", "clientId")], ids=["kebab", "camel"]
)
def test_client_section_is_a_pasteable_list_item_headed_by_the_api_key(
    style: Literal["kebab", "camel"], first_key: str
) -> None:
    client = _client(group="acme")
    section = client_section(client, style)
    lines = section.splitlines()
    assert lines[0] == f"# X-Api-Key: {client.api_key.reveal()}"
    assert lines[1] == f"- {first_key}: new"
    list_key = "allowed-clients" if style == "kebab" else "allowedClients"
    assert parse_clients(f"{list_key}:\n{section}") == [client]


def test_client_section_quotes_a_key_that_yaml_would_read_as_a_number() -> None:
    client = _client(key="1" * 64)
    assert parse_clients("allowed-clients:\n" + client_section(client)) == [client]


@pytest.mark.parametrize(("text", "style"), FILES)
def test_merge_adds_a_client_keeping_comments_clients_and_style(text: str, style: str) -> None:
    merged = merge_client(text, _client())
    assert parse_clients(merged) == [IDM, DA, _client()]
    assert _comments(merged) == _comments(text)
    assert _is_subsequence(text.splitlines(), merged.splitlines())
    first_key = "client-id" if style == "kebab" else "clientId"
    assert re.search(rf"^\s*- +{first_key}: new$", merged, re.MULTILINE)


@pytest.mark.parametrize(("text", "style"), FILES)
def test_merge_updates_a_client_in_place(text: str, style: str) -> None:
    changed = _client("idm", NEW_KEY, basic="hermod:Other-pass-2")
    merged = merge_client(text, changed)
    assert parse_clients(merged) == [changed, DA]
    assert _comments(merged) == _comments(text)
    differing = set(merged.splitlines()) ^ set(text.splitlines())
    assert all(
        NEW_KEY in line or "Other-pass-2" in line or PASSWORD in line or IDM_KEY in line
        for line in differing
    ), differing
    assert len(merged.splitlines()) == len(text.splitlines())


@pytest.mark.parametrize(("text", "style"), FILES)
def test_merge_is_idempotent(text: str, style: str) -> None:
    once = merge_client(text, _client())
    assert merge_client(once, _client()) == once
    assert merge_client(text, IDM) == text


def test_merge_removes_fields_the_client_no_longer_has_but_not_comments() -> None:
    bare = _client("idm", IDM_KEY, url=None, basic=None)
    merged = merge_client(KEBAB_NESTED, bare)
    assert parse_clients(merged) == [bare, DA]
    assert "callback-url" not in merged.split("# Digital Access")[0]
    # The end-of-line comment went with its line; every other comment stayed.
    assert _comments(merged) == [c for c in _comments(KEBAB_NESTED) if "operator" not in c]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "allowed-clients:\n  - client-id: new\n", id="empty-file"),
        pytest.param(
            "# Hermod\n", "# Hermod\nallowed-clients:\n  - client-id: new\n", id="only-comments"
        ),
        pytest.param(
            "application:\n  public-url: x  # devices\n# database\nspring: {}\n",
            "application:\n  public-url: x  # devices\n  allowed-clients:\n    - client-id: new\n",
            id="under-existing-application",
        ),
        pytest.param(
            "publicUrl: x\nserver:\n    port: 1\n",
            "publicUrl: x\nserver:\n    port: 1\nallowedClients:\n    - clientId: new\n",
            id="camel-file-top-level",
        ),
        pytest.param(
            "application:\n  allowed-clients:   # none yet\n  public-url: x\n",
            "application:\n  allowed-clients:   # none yet\n    - client-id: new\n",
            id="empty-list",
        ),
    ],
)
def test_merge_creates_the_list_where_hermod_reads_it(text: str, expected: str) -> None:
    merged = merge_client(text, _client())
    assert merged.startswith(expected)
    assert parse_clients(merged) == [_client()]
    assert _comments(merged) == _comments(text)
    assert merge_client(merged, _client()) == merged


SYNTAX_AND_SHAPE_ERRORS = [
    pytest.param(
        f"application:\n  allowed-clients:\n  - client-id: idm\n  \tkey: {IDM_KEY}\n",
        "found character '\\t' that cannot start any token",
        (4, 3),
        id="tab",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: idm\n  key: {IDM_KEY}\n"
        f"- client-id: idm\n  key: {DA_KEY}\n",
        "client 'idm' is listed twice (first at line 2)",
        (4, 14),
        id="duplicate-client-id",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: idm\n  key: {IDM_KEY}\n  key: {DA_KEY}\n",
        'found duplicate key "key"',
        (4, 3),
        id="duplicate-key-line",
    ),
    pytest.param(
        "allowed-clients:\n- client-id: idm\n  key: deadbeef0123\n",
        "client 'idm': key is not 64 hexadecimal characters",
        (3, 8),
        id="key-not-64-hex",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: idm\n  key: {IDM_KEY[:-1]}x\n",
        "client 'idm': key is not 64 hexadecimal characters",
        (3, 8),
        id="key-not-hex",
    ),
    pytest.param(
        "allowedClients:\n- clientId: idm\n  callbackUrl: https://x\n",
        "client 'idm': key is missing",
        (2, 3),
        id="missing-key",
    ),
    pytest.param(
        f"allowed-clients:\n- key: {IDM_KEY}\n",
        "client #1: client-id is missing",
        (2, 3),
        id="missing-client-id",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: 42\n  key: {IDM_KEY}\n",
        "client #1: client-id must be",
        (2, 14),
        id="client-id-not-text",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: idm\n  key: {IDM_KEY}\n"
        f"  callback-basic-auth: {PASSWORD}\n",
        "client 'idm': callback-basic-auth is not user:password",
        (4, 24),
        id="basic-auth-without-colon",
    ),
    pytest.param("allowed-clients: idm\n", "allowed-clients is not a list", (1, 18), id="not-list"),
    pytest.param(
        "allowed-clients:\n- idm\n", "client #1 is not a mapping", (2, 3), id="item-not-mapping"
    ),
    pytest.param("- idm\n", "the top level is not a mapping", (1, 1), id="top-not-mapping"),
    pytest.param(
        "a: 1\n---\nb: 2\n", "a second YAML document starts here", (2, 1), id="two-documents"
    ),
]


@pytest.mark.parametrize(("text", "message", "position"), SYNTAX_AND_SHAPE_ERRORS)
def test_bad_files_are_refused_naming_line_column_and_client_never_the_secret(
    text: str, message: str, position: tuple[int, int]
) -> None:
    with pytest.raises(HermodConfigError) as caught:
        parse_clients(text, "cod-hermod.yml")
    error = caught.value
    assert (error.line, error.column) == position
    assert str(error).startswith(f"cod-hermod.yml line {position[0]}, column {position[1]}: ")
    assert message in str(error)
    for secret in (IDM_KEY, DA_KEY, IDM_KEY[:-1], PASSWORD, "deadbeef"):
        assert secret not in str(error)


def test_merge_refuses_a_bad_file_instead_of_rewriting_it() -> None:
    with pytest.raises(HermodConfigError, match="line 2, column 1"):
        merge_client("allowed-clients:\n\t- client-id: x\n", _client())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"key": "abc123"}, "key is not 64 hexadecimal", id="short-key"),
        pytest.param({"client_id": "a:b"}, "client-id must be", id="colon-in-id"),
        pytest.param({"url": "ftp://x"}, "callback-url is not an http(s) URL", id="bad-url"),
        pytest.param({"basic": "nocolon"}, "callback-basic-auth is not", id="bad-basic"),
    ],
)
def test_a_client_is_validated_when_built(fields: dict[str, str], message: str) -> None:
    with pytest.raises(HermodConfigError, match=re.escape(message)) as caught:
        _client(**fields)
    assert "abc123" not in str(caught.value)
    assert "nocolon" not in str(caught.value)


def _laughs(levels: int, width: int = 10) -> str:
    """A billion-laughs document: each anchor a list of `width` aliases of the one before."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nallowed-clients:\n- client-id: idm\n  key: {IDM_KEY}\n"


MIB = 1024 * 1024
HOSTILE_FILES = [
    pytest.param(_laughs(9), "expands to more than 100000 nodes", (5, 45), id="alias-bomb"),
    pytest.param(
        "x: &x 1\n" + "".join(f"y{n}: *x\n" for n in range(101)),
        "uses more than 100 aliases",
        (102, 7),
        id="too-many-aliases",
    ),
    pytest.param(
        "x: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "nests deeper than 64 levels",
        (1, 68),
        id="deep-flow",
    ),
    pytest.param(
        "".join(" " * n + f"k{n}:\n" for n in range(100)) + " " * 100 + "v: 1\n",
        "nests deeper than 64 levels",
        (65, 65),
        id="deep-block",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: idm\n  key: {IDM_KEY}\n  client-id: other\n",
        'found duplicate key "client-id"',
        (4, 3),
        id="duplicate-key",
    ),
    pytest.param(
        f"allowed-clients:\n- client-id: idm\n  key: [{IDM_KEY}\n",
        "expected ',' or ']'",
        (4, 1),
        id="malformed",
    ),
]


@pytest.mark.parametrize(("text", "message", "position"), HOSTILE_FILES)
@pytest.mark.parametrize("action", ["read", "merge"])
def test_hostile_files_are_one_sentence_in_bounded_time_and_memory(
    text: str, message: str, position: tuple[int, int], action: str
) -> None:
    def act() -> object:
        if action == "read":
            return parse_clients(text, "cod-hermod.yml")
        return merge_client(text, _client(), "cod-hermod.yml")

    spent = cost(act)
    error = spent.error
    assert isinstance(error, HermodConfigError), error
    assert str(error) == f"cod-hermod.yml line {position[0]}, column {position[1]}: {error.problem}"
    assert message in error.problem
    assert IDM_KEY not in str(error)
    assert spent.seconds < 5, spent
    assert spent.peak_bytes < 32 * MIB, spent


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b"allowed-clients:\n- client-id: caf\xe9\n",
            "is not UTF-8 text: byte 0xe9 at offset 33",
            id="not-utf8",
        ),
        pytest.param(b"#" * (2 * MIB), f"is {2 * MIB} bytes, more than {MIB}", id="too-large"),
    ],
)
def test_a_file_that_is_not_utf8_or_too_large_is_refused_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "application.yml"
    path.write_bytes(content)
    spent = cost(lambda: read_config(path))
    assert isinstance(spent.error, HermodConfigError), spent.error
    assert str(spent.error).startswith(f"{path}: {message}")
    assert spent.seconds < 5
    assert spent.peak_bytes < 4 * MIB


def test_a_spring_file_with_a_few_anchors_is_read() -> None:
    text = (
        "defaults: &defaults\n  group: shared\n"
        f"allowed-clients:\n- client-id: idm\n  key: {IDM_KEY}\n  <<: *defaults\n"
    )
    [client] = parse_clients(text)
    assert client.group == "shared"
