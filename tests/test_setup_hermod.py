"""Setup against the lab, where Hermod applies an edited application.yml only when its
configuration is refreshed: setup refreshes it by the site's URL or command, lists the refresh as
manual without either, stops at a refresh that fails (one sentence, no hang, output masked), and
refreshes nothing on a run that writes nothing. And the callback suffix: a site and a lab that
agree on another one pass AUTH-002 and CONN-005."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smartid.lab.state import LabState
from smartid.masking import Secret, find_leaks
from tests.helpers import Run
from tests.lab import lab_session, new_state, refresh_hermod, running_lab
from tests.servers import closed_port
from tests.setuprun import LAB_SITE, Lab, summary

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

LAB_REFRESH = 'refresh_url = "{lab_hermod}/util/refresh"\n'
NO_REFRESH = LAB_SITE.replace(LAB_REFRESH, "")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    state = new_state(tmp_path / "lab")
    with running_lab(state):
        yield Lab(state, tmp_path)


def _site(lab: Lab, messaging: str) -> Path:
    assert LAB_REFRESH in LAB_SITE, "the lab site no longer refreshes Hermod by its URL"
    return lab.site(NO_REFRESH.replace("[messaging]\n", f"[messaging]\n{messaging}", 1))


def _command(code: str, *args: str | Path) -> str:
    return f"refresh_command = {json.dumps([sys.executable, '-c', code, *map(str, args)])}\n"


def _hermod_status(state: LabState) -> dict[str, Any]:
    with lab_session(state) as http:
        status: dict[str, Any] = http.get(
            f"{state.endpoints()['hermod']}/util/config-status"
        ).json()
    return status


def _failure(run: Run, step: str) -> str:
    """The one-sentence failure of a step, as the run printed it."""
    lines = [line for line in run.output.splitlines() if line.startswith(f"{step}: Hermod")]
    assert len(lines) == 1, run.output
    return lines[0]


def _manual(run: Run) -> dict[str, str]:
    found = re.findall(r"^(SETUP-\d{3})(?: [^:]+)?: manual: (.*)$", run.stdout, flags=re.MULTILINE)
    return dict(found)


def test_setup_refreshes_hermod_by_the_lab_sites_url_and_then_hermod_takes_the_key(
    lab: Lab,
) -> None:
    run = lab.run()
    assert run.returncode == 0, run.output
    url = f"{lab.state.endpoints()['hermod']}/util/refresh"
    assert (
        f"run Hermod configuration refresh: application.yml not applied -> applied by POST {url}"
        in run.output
    )
    assert _hermod_status(lab.state)["clients"] == ["idm"]
    verify = lab.run("-k", "CONN-003", marker="verify")
    assert verify.returncode == 0, verify.output
    assert "1 passed" in verify.output


def test_a_second_run_that_writes_nothing_refreshes_nothing(lab: Lab) -> None:
    assert lab.run().returncode == 0
    loaded = _hermod_status(lab.state)["loaded"]
    again = lab.run()
    assert again.returncode == 0, again.output
    assert summary(again)["SETUP-402"] == "unchanged"
    assert "refresh" not in again.stdout.split("Smart ID setup")[-1]
    assert _hermod_status(lab.state)["loaded"] == loaded


def test_the_plan_lists_the_refresh_and_refreshes_nothing(lab: Lab) -> None:
    loaded = _hermod_status(lab.state)["loaded"]
    run = lab.run("--plan")
    assert run.returncode == 0, run.output
    changes = lab.plan()["changes"]
    assert isinstance(changes, list)
    [refresh] = [c for c in changes if c["object"] == "Hermod configuration"]
    assert (refresh["step"], refresh["field"], refresh["action"]) == ("SETUP-402", "refresh", "run")
    assert _hermod_status(lab.state)["loaded"] == loaded


def test_without_refresh_settings_setup_exits_0_and_lists_the_refresh_as_manual(lab: Lab) -> None:
    site = _site(lab, "")
    run = lab.run(site=site)
    assert run.returncode == 0, run.output
    manual = _manual(run)
    assert manual["SETUP-402"].startswith(
        f"Refresh Hermod's configuration so that it applies {lab.state.hermod_config}"
    )
    assert "Once Hermod's configuration is refreshed (SETUP-402)" in manual["SETUP-406"]
    assert summary(run)["SETUP-402"] == "changed"
    # The refresh matters: until it is done, the lab Hermod refuses the key setup wrote.
    refused = lab.run("-k", "CONN-003", site=site, marker="verify")
    assert refused.returncode == 1, refused.output
    assert "HTTP 401" in refused.output
    assert refresh_hermod(lab.state) == ["idm"]
    assert lab.run("-k", "CONN-003", site=site, marker="verify").returncode == 0
    again = lab.run(site=site)
    assert again.returncode == 0, again.output
    assert _manual(again) == {}
    assert set(summary(again).values()) == {"unchanged"}


def test_a_refresh_command_that_fails_stops_setup_at_its_step(lab: Lab) -> None:
    code = "import sys; print('hermod.service is not loaded'); sys.exit(3)"
    run = lab.run(site=_site(lab, _command(code)))
    assert run.returncode == 1
    failure = _failure(run, "SETUP-402")
    assert failure.startswith(f"SETUP-402: Hermod refresh command '{sys.executable} -c ")
    assert failure.endswith(": exited with status 3 (hermod.service is not loaded)")
    assert "SETUP-402: Hermod refresh command" in run.output
    assert summary(run)["SETUP-403"] == "blocked by SETUP-402"
    assert "Traceback" not in run.output
    # The next run refreshes although it writes nothing: the failed refresh is still owed.
    fixed = lab.run(site=_site(lab, LAB_REFRESH))
    assert fixed.returncode == 0, fixed.output
    assert "run Hermod configuration refresh" in fixed.output
    assert _hermod_status(lab.state)["clients"] == ["idm"]


def test_a_refresh_command_that_hangs_is_stopped_at_refresh_timeout(lab: Lab) -> None:
    site = _site(lab, _command("import time; time.sleep(30)") + "refresh_timeout = 1\n")
    started = time.monotonic()
    run = lab.run(site=site)
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    assert _failure(run, "SETUP-402").endswith(": did not finish within 1 s and was stopped")
    assert elapsed < 20, f"the run took {elapsed:.1f} s"
    evidence = [
        p.read_text()
        for p in (lab.tmp / "reports").rglob("*-attachment.txt")
        if "did not finish" in p.read_text()
    ]
    assert len(evidence) == 1
    seconds = float(re.findall(r" in (\d+\.\d+) s\n", evidence[0])[0])
    assert 1.0 <= seconds < 2.0, f"the refresh returned after {seconds} s"
    print(
        f"refresh_timeout 1 s: the refresh returned after {seconds:.2f} s, "
        f"the whole setup run after {elapsed:.2f} s"
    )


def test_a_refresh_command_printing_the_hermod_key_shows_it_masked(lab: Lab) -> None:
    key_file = lab.tmp / "site-state" / "variant" / "hermod-client.key"
    code = (
        "import sys; print(open(sys.argv[1]).read()); "
        "print('loaded key', open(sys.argv[2]).read().strip()); sys.exit(1)"
    )
    run = lab.run(site=_site(lab, _command(code, lab.state.hermod_config, key_file)))
    assert run.returncode == 1
    key = key_file.read_text().strip()
    assert key not in run.output
    assert _failure(run, "SETUP-402").endswith("exited with status 1 (loaded key ****)")
    attachments = [p.read_text() for p in (lab.tmp / "reports").rglob("*-attachment.txt")]
    assert any("loaded key ****" in text for text in attachments), "no refresh evidence"
    assert find_leaks(lab.tmp / "reports", [Secret(key, "the Hermod key")]) == []


def test_an_unreachable_refresh_url_is_one_sentence_naming_it(lab: Lab) -> None:
    url = f"https://127.0.0.1:{closed_port()}/hermod/rest/util/refresh"
    run = lab.run(site=_site(lab, f'refresh_url = "{url}"\nrefresh_timeout = 5\n'))
    assert run.returncode == 1
    assert _failure(run, "SETUP-402") == (
        f"SETUP-402: Hermod refresh URL {url}: connection refused"
    )
    assert "blocked by SETUP-402" in run.output
    assert "Traceback" not in run.output


@pytest.fixture
def suffixed(tmp_path: Path) -> Iterator[Lab]:
    """A lab whose Hermod calls back at callback-url + /cb/<type>/in, and whose IDM Operator
    takes the callbacks there."""
    state = new_state(tmp_path / "lab")
    with running_lab(state, callback_suffix="/cb/<type>/in"):
        yield Lab(state, tmp_path)


def test_a_site_and_a_lab_with_the_same_callback_suffix_pass_auth_002_and_conn_005(
    suffixed: Lab,
) -> None:
    site = suffixed.site(
        LAB_SITE.replace("[messaging]\n", '[messaging]\ncallback_suffix = "/cb/<type>/in"\n', 1)
    )
    assert suffixed.run(site=site).returncode == 0
    run = suffixed.run("-k", "AUTH-002 or CONN-005", site=site, marker="verify")
    assert run.returncode == 0, run.output
    assert "2 passed" in run.output
    # The setting matters: the default suffix names a path this IDM Operator does not serve.
    default = suffixed.run("-k", "AUTH-002", marker="verify")
    assert default.returncode == 1
    assert "/idm-operator/ws/hermod/callback/ping" in default.output
    assert "HTTP 404" in default.output


def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


HOSTILE_APPLICATION_YML = [
    pytest.param(_laughs(9).encode(), "line 5, column 45: expands to more than", id="alias-bomb"),
    pytest.param(
        b"allowed-clients:\n- client-id: idm\n  client-id: other\n",
        'line 3, column 3: found duplicate key "client-id"',
        id="duplicate-key",
    ),
    pytest.param(
        b"allowed-clients:\n- client-id: caf\xe9\n",
        ": is not UTF-8 text: byte 0xe9 at offset 33",
        id="not-utf8",
    ),
    pytest.param(
        b"allowed-clients:\n- client-id: [idm\n",
        "line 3, column 1: expected ',' or ']'",
        id="malformed",
    ),
]


@pytest.mark.parametrize(("content", "problem"), HOSTILE_APPLICATION_YML)
def test_a_hostile_application_yml_is_the_same_sentence_in_setup_and_verify(
    lab: Lab, content: bytes, problem: str
) -> None:
    path = lab.tmp / "application.yml"
    path.write_bytes(content)
    site = lab.site(LAB_SITE.replace('"{lab_state}/hermod/application.yml"', json.dumps(str(path))))
    sentences = []
    for marker, selection in (("setup", "test_04_messaging"), ("verify", "AUTH-003")):
        started = time.monotonic()
        run = lab.run("-k", selection, site=site, marker=marker)
        assert time.monotonic() - started < 60, marker
        assert run.returncode == 1, run.output
        assert "Traceback" not in run.output
        assert "Error:" not in run.output  # no exception class name, only the sentence
        found = [line for line in run.output.splitlines() if problem in line]
        assert found, run.output
        sentences.append(found[0][found[0].index(str(path)) :])
    assert path.read_bytes() == content  # nothing rewritten
    setup_sentence, verify_sentence = sentences
    assert setup_sentence == verify_sentence, sentences
