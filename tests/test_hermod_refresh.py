"""Hermod's refresh, as the site names it: a command run without a shell, bounded by its timeout,
its output masked and bounded; or a POST to a URL. Every failure is one sentence naming the
command or the URL, and none of them hangs."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest

from smartid import errors
from smartid.hermod import Refresh, run_refresh
from smartid.hermod.refresh import MAX_OUTPUT
from smartid.masking import MASKER, Secret
from tests.certs import Cert, make_ca, make_leaf, write_chain
from tests.servers import closed_port, https_server

KEY = "5e" * 32


def _python(code: str, timeout: float = 10.0) -> Refresh:
    return Refresh(command=(sys.executable, "-c", code), timeout=timeout)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Path]:
    ca = make_ca("Refresh Test Root CA")
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    bundle.write_bytes(ca.pem)
    return ca, bundle


def test_a_command_that_succeeds_gives_its_output() -> None:
    result = run_refresh(_python("print('reloaded hermod')"))
    assert result.ok
    assert result.output == "reloaded hermod\n"
    command = shlex.join((sys.executable, "-c", "print('reloaded hermod')"))
    # A command longer than 100 characters (a checkout in a deep folder) is shown shortened.
    shown = command if len(command) <= 100 else command[:97] + "..."
    assert result.target == f"Hermod refresh command '{shown}'"


def test_a_command_that_exits_non_zero_is_one_sentence_with_its_last_line() -> None:
    result = run_refresh(
        _python("import sys; print('Unit hermod.service not found.'); sys.exit(5)")
    )
    assert isinstance(result.error, errors.TargetError)
    message = str(result.error)
    assert message.startswith(f"Hermod refresh command '{sys.executable} -c ")
    assert message.endswith(": exited with status 5 (Unit hermod.service not found.)")
    assert "\n" not in message


def test_a_command_that_hangs_is_stopped_at_its_timeout() -> None:
    started = time.monotonic()
    result = run_refresh(_python("import time; time.sleep(30)", timeout=1))
    elapsed = time.monotonic() - started
    assert isinstance(result.error, errors.TimeoutError)
    assert str(result.error).endswith("did not finish within 1 s and was stopped")
    assert 1 <= elapsed < 3, f"returned after {elapsed:.2f} s"


def test_a_child_left_behind_does_not_hold_the_refresh() -> None:
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); print('ok')"
    )
    started = time.monotonic()
    result = run_refresh(_python(code))
    assert result.ok, result.error
    assert time.monotonic() - started < 5


def test_a_command_that_cannot_be_started_names_it() -> None:
    result = run_refresh(Refresh(command=("/nonexistent/hermodctl", "reload")))
    assert str(result.error) == (
        "Hermod refresh command '/nonexistent/hermodctl reload': cannot be started "
        "(No such file or directory)"
    )


def test_no_shell_reads_the_arguments() -> None:
    code = "import sys; print(sys.argv[1:])"
    result = run_refresh(Refresh(command=(sys.executable, "-c", code, "$HOME", ";", "ls")))
    assert result.output == "['$HOME', ';', 'ls']\n"


def test_the_output_and_the_command_are_masked() -> None:
    MASKER.register(Secret(KEY, "test Hermod key"))
    result = run_refresh(
        Refresh(command=(sys.executable, "-c", "import sys; print(sys.argv[1]); sys.exit(1)", KEY))
    )
    assert KEY not in result.output
    assert KEY not in str(result.error)
    assert KEY not in result.target
    assert "****" in result.output


def test_a_flood_of_output_is_cut_at_a_line_end() -> None:
    MASKER.register(Secret(KEY, "test Hermod key"))
    # The key straddles the cut: neither half may be kept.
    code = f"import sys; sys.stdout.write('x' * ({MAX_OUTPUT} - 10) + '{KEY}\\n' + 'y' * 10**6)"
    result = run_refresh(_python(code))
    assert result.ok
    assert len(result.output) < MAX_OUTPUT + 100
    assert KEY[:10] not in result.output
    assert result.output.endswith("[output cut after 16 KiB]\n")


def test_a_url_that_answers_2xx_is_a_refresh(tmp_path: Path, ca: tuple[Cert, Path]) -> None:
    cert, key = write_chain(tmp_path, "hermod", make_leaf(ca[0]))
    with https_server(cert, key, status=200, body=b'{"clients": ["idm"]}') as port:
        url = f"https://localhost:{port}/hermod/rest/util/refresh"
        result = run_refresh(Refresh(url=url, ca_bundle=ca[1]))
    assert result.ok
    assert result.output == '{"clients": ["idm"]}'


def test_an_unreachable_url_is_one_sentence_naming_it() -> None:
    url = f"https://127.0.0.1:{closed_port()}/hermod/rest/util/refresh"
    result = run_refresh(Refresh(url=url, timeout=2))
    assert isinstance(result.error, errors.ConnectError)
    assert str(result.error) == f"Hermod refresh URL {url}: connection refused"


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        pytest.param(503, b'{"detail": "still starting"}', "HTTP 503: still starting", id="503"),
        pytest.param(401, b"user admin:x", "asks for credentials", id="401"),
    ],
)
def test_a_url_that_answers_otherwise_fails_with_the_status(
    tmp_path: Path, ca: tuple[Cert, Path], status: int, body: bytes, said: str
) -> None:
    cert, key = write_chain(tmp_path, "hermod", make_leaf(ca[0]))
    with https_server(cert, key, status=status, body=body) as port:
        url = f"https://localhost:{port}/hermod/rest/util/refresh"
        result = run_refresh(Refresh(url=url, ca_bundle=ca[1]))
    assert isinstance(result.error, errors.HTTPStatusError)
    assert str(result.error).startswith(f"POST {url}: ")
    assert said in str(result.error)


def test_a_url_that_redirects_is_not_followed(tmp_path: Path, ca: tuple[Cert, Path]) -> None:
    cert, key = write_chain(tmp_path, "hermod", make_leaf(ca[0]))
    with https_server(cert, key, status=302, body=b"") as port:
        url = f"https://localhost:{port}/hermod/rest/util/refresh"
        result = run_refresh(Refresh(url=url, ca_bundle=ca[1]))
    assert isinstance(result.error, errors.RedirectError)
    assert str(result.error) == (
        f"Hermod refresh URL {url}: HTTP 302: redirects to nowhere (no Location header); the "
        "suite does not follow redirects: point the site at the final URL"
    )


def test_a_url_with_an_untrusted_certificate_is_a_tls_error(
    tmp_path: Path, ca: tuple[Cert, Path]
) -> None:
    cert, key = write_chain(tmp_path, "hermod", make_leaf(make_ca("Foreign Root")))
    with https_server(cert, key) as port:
        url = f"https://localhost:{port}/hermod/rest/util/refresh"
        result = run_refresh(Refresh(url=url, ca_bundle=ca[1]))
    assert isinstance(result.error, errors.TLSError)
    assert str(result.error).startswith(f"Hermod refresh URL {url}: TLS certificate verification")


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither"),
        pytest.param({"command": ("true",), "url": "https://h/x"}, id="both"),
        pytest.param({"command": ()}, id="empty-command"),
        pytest.param({"command": ("true",), "timeout": 0}, id="no-time"),
    ],
)
def test_an_impossible_refresh_is_refused_when_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="refresh"):
        Refresh(**kwargs)  # type: ignore[arg-type]


def test_a_long_command_is_named_by_its_start() -> None:
    refresh = Refresh(command=("/usr/bin/hermodctl", "reload", *["--flag"] * 40))
    assert refresh.how.startswith("command '/usr/bin/hermodctl reload --flag")
    assert refresh.how.endswith("...'")
    assert len(refresh.how) < 120
