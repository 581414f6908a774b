"""A fleet of sites verified by one command (smartid.report.fleet, docs/fleet.md): each site in
its own process with its own reports folder; an unusable site file and a site that does not
finish in time are rows of the result, never a stop; the exit code is the worst site's."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree
from ruamel.yaml import YAML

from smartid.masking import Secret, find_leaks
from smartid.report import fleet
from smartid.report.fleet import find_sites, worst
from tests.helpers import ROOT
from tests.servers import silent_listener
from tests.setuplab import SetUpLab, set_up_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e, pytest.mark.long]

LAB_SITE = (ROOT / "sites" / "lab.toml").read_text()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SetUpLab]:
    with set_up_lab(tmp_path_factory.mktemp("fleet")) as ready:
        yield ready


def _fleet(lab: SetUpLab, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartid.report.fleet", *args],
        cwd=ROOT,
        env={**os.environ, **lab.env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_worst_exit_code_wins() -> None:
    assert worst([0, 1, 0]) == 1
    assert worst([1, 2, 0]) == 2
    assert worst([2, 4, 3, 1]) == 4
    assert worst([]) == 0


def test_a_result_file_is_copied_where_it_cannot_be_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a-result.json"
    source.write_text('{"name": "x"}')

    def refuse(*_: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(fleet.os, "link", refuse)
    fleet._link_or_copy(source, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == '{"name": "x"}'
    assert source.stat().st_nlink == 1


def test_two_site_files_with_one_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "same"\ntarget = "lab"\n')
    (tmp_path / "b.toml").write_text('name = "same"\ntarget = "lab"\n')
    with pytest.raises(ValueError, match="are both named 'same'"):
        find_sites([tmp_path])


def test_a_fleet_gives_each_site_its_row_and_the_worst_exit_code(
    lab: SetUpLab, tmp_path: Path
) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "good.toml").write_text(f'name = "good"\n{LAB_SITE}')
    # The same lab judged by a stricter policy: every certificate's key is too small for it.
    strict = "\n[tls]\nmin_rsa_bits = 8192\nmin_ec_bits = 521\n"
    (sites / "strict.toml").write_text(f'name = "strict"\n{LAB_SITE}{strict}')
    (sites / "broken.toml").write_text('name = "broken"\ntarget = "nowhere"\n')
    with silent_listener() as port:
        (sites / "silent.toml").write_text(
            'name = "silent"\ntarget = "remote"\n\n[tls]\nread_timeout = 120\n\n'
            f'[[endpoints]]\nname = "quiet"\nurl = "https://127.0.0.1:{port}/"\n'
        )
        reports = tmp_path / "reports"
        done = _fleet(lab, "run", str(sites), "-j", "2", "--timeout", "15", f"--reports={reports}")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "Traceback" not in output
    fleet = json.loads((reports / "fleet.json").read_text())
    rows = {row["name"]: row for row in fleet["sites"]}
    assert {name: row["exit"] for name, row in rows.items()} == {
        "broken": 4,
        "good": 0,
        "silent": 2,
        "strict": 1,
    }, output
    assert "did not finish within 15 s" in rows["silent"]["verdict"]
    assert "target" in rows["broken"]["verdict"], rows["broken"]  # the site error's sentence
    assert rows["good"]["counts"]["passed"] >= 30
    assert {f["id"] for f in rows["strict"]["failed"]} == {"TLS-004"}
    # Each site has its own reports, and the terminal ends with one line per site.
    for name in ("good", "strict"):
        assert (reports / "sites" / name / "summary.json").is_file()
        assert (reports / "sites" / name / "html" / "index.html").is_file()
        assert (reports / "sites" / name / "history" / f"{name}.jsonl").is_file()
    tail = done.stdout.strip().splitlines()[-6:]
    assert tail[0] == "Smart ID fleet: 4 site(s), exit 4", output
    assert tail[-1].startswith("Fleet: "), output
    assert [line.split(":", 1)[0].strip() for line in tail[1:-1]] == [
        "broken",
        "good",
        "silent",
        "strict",
    ]
    junit = ElementTree.parse(reports / "fleet-junit.xml").getroot()
    names = {suite.get("name", "").split(":", 1)[0] for suite in junit.iter("testsuite")}
    assert {"good", "strict"} <= names
    # One report of the fleet: a first page with a row per site, and the Allure report with the
    # sites that finished as its environments.
    page = (reports / "fleet" / "html" / "index.html").read_text()
    for name in ("broken", "good", "silent", "strict"):
        assert f">{name}<" in page
    assert 'href="../../sites/good/html/index.html"' in page
    allure = (reports / "fleet" / "html" / "allure" / "index.html").read_text()
    encoded = re.search(r'/environments\.json","([A-Za-z0-9+/=]+)"', allure)
    assert encoded is not None
    environments = {e["id"] for e in json.loads(base64.b64decode(encoded.group(1)))}
    assert {"good", "strict"} <= environments
    assert not {"broken", "silent"} & environments
    # The fleet's results are the sites' own files, linked where the file system can.
    linked = sorted((reports / "fleet" / "allure-results").glob("*-result.json"))
    assert len(linked) == rows["good"]["counts"]["total"] + rows["strict"]["counts"]["total"]
    assert all(path.stat().st_nlink == 2 for path in linked)
    # The lab's secrets are in no report of the fleet.
    secrets = [Secret(value, name) for name, value in lab.state.secrets().items()]
    assert find_leaks(reports, secrets) == []


def test_merge_builds_the_fleet_from_reports_folders_made_elsewhere(
    lab: SetUpLab, tmp_path: Path
) -> None:
    site = tmp_path / "one.toml"
    site.write_text(f'name = "one"\n{LAB_SITE}')
    elsewhere = tmp_path / "job-one"
    done = _fleet(lab, "run", str(site), "--only", "one", f"--reports={elsewhere}")
    assert done.returncode == 0, done.stdout + done.stderr
    merged = tmp_path / "merged"
    again = _fleet(lab, "merge", str(elsewhere / "sites" / "one"), f"--reports={merged}")
    assert again.returncode == 0, again.stdout + again.stderr
    fleet = json.loads((merged / "fleet.json").read_text())
    assert [(row["name"], row["exit"]) for row in fleet["sites"]] == [("one", 0)]
    nothing = _fleet(lab, "run", str(site), "--only", "two", f"--reports={elsewhere}")
    assert nothing.returncode == 4
    assert "no site is named 'two'" in nothing.stderr


def test_a_fleet_plans_and_sets_up_each_site(lab: SetUpLab, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(f'name = "good"\n{LAB_SITE}')
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\ntarget = "lab"\n\n[idm]\nadmin_pasword = "x"\n')
    reports = tmp_path / "reports"
    planned = _fleet(lab, "run", "--plan", str(good), str(broken), f"--reports={reports}")
    assert planned.returncode == 4, planned.stdout + planned.stderr
    plan = json.loads((reports / "fleet-plan.json").read_text())
    by_site = {site["name"]: site for site in plan["sites"]}
    assert by_site["good"]["exit"] == 0
    # A site's own state (.smartid/good/) makes its own CM connection zip: one change at most.
    assert by_site["good"]["pending"] == len(by_site["good"]["changes"]) <= 1
    assert "pending changes, written to" in by_site["good"]["verdict"]
    assert by_site["broken"]["exit"] == 4
    assert "did you mean 'admin_password'" in by_site["broken"]["verdict"]
    assert (reports / "sites" / "good" / "plan.json").is_file()
    done = _fleet(lab, "run", "--setup", str(good), f"--reports={reports}")
    assert done.returncode == 0, done.stdout + done.stderr
    fleet = json.loads((reports / "fleet.json").read_text())
    assert [(row["name"], row["exit"]) for row in fleet["sites"]] == [("good", 0)]
    assert " passed" in fleet["sites"][0]["verdict"]
    assert (reports / "sites" / "good" / "setup.log").is_file()


def _recipes() -> tuple[dict[str, Any], dict[str, Any]]:
    """The GitLab CI and GitHub Actions recipes of docs/fleet.md, as their YAML says."""
    text = (ROOT / "docs" / "fleet.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, "docs/fleet.md holds one GitLab CI and one GitHub Actions recipe"
    gitlab, github = (YAML(typ="safe").load(block) for block in blocks)
    return gitlab, github


def _shell(line: str, cwd: Path, lab: SetUpLab, env: dict[str, str]) -> int:
    venv = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join([str(cwd / ".venv" / "bin"), venv, os.environ.get("PATH", "")])
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env={**os.environ, **lab.env, **env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode


def _workspace(tmp_path: Path, name: str, sites: list[str]) -> Path:
    """A CI job's checkout: the repository's site files (here: lab sites) and .venv/ linked."""
    work = tmp_path / name
    (work / "sites").mkdir(parents=True)
    for site in sites:
        (work / "sites" / f"{site}.toml").write_text(f'name = "{site}"\n{LAB_SITE}')
    (work / ".venv").symlink_to(ROOT / ".venv")
    return work


def _installs(line: str) -> bool:
    return line.startswith(("make install", "apt-get"))


def test_the_gitlab_ci_recipe_runs_as_written(lab: SetUpLab, tmp_path: Path) -> None:
    gitlab, _ = _recipes()
    verify, report = gitlab["verify"], gitlab["report"]
    sites = verify["parallel"]["matrix"][0]["SITE"]
    work = _workspace(tmp_path, "gitlab", sites)
    codes = {}
    for site in sites:  # one job per matrix value, in one workspace: GitLab restores artifacts
        for line in verify["script"]:  # at the paths they were saved from
            codes[site] = _shell(line, work, lab, {"SITE": site})
        for path in verify["artifacts"]["paths"]:
            assert (work / path.replace("$SITE", site)).is_dir(), path
    assert codes == dict.fromkeys(sites, 0)
    for line in report["script"]:
        assert _shell(line, work, lab, {}) == 0, line
    fleet = json.loads((work / "reports" / "fleet.json").read_text())
    assert sorted((row["name"], row["exit"]) for row in fleet["sites"]) == sorted(
        (site, 0) for site in sites
    )
    assert (work / "reports" / "fleet" / "html" / "allure" / "index.html").is_file()


def test_the_github_actions_recipe_runs_as_written(lab: SetUpLab, tmp_path: Path) -> None:
    _, github = _recipes()
    verify, report = github["jobs"]["verify"], github["jobs"]["report"]
    sites = verify["strategy"]["matrix"]["site"]
    artifacts = tmp_path / "artifact-store"
    for site in sites:  # one job per matrix value, each in its own fresh checkout
        work = _workspace(tmp_path, f"github-{site}", sites)
        for step in verify["steps"]:
            if "run" in step and not _installs(step["run"]):
                line = step["run"].replace("${{ matrix.site }}", site)
                assert _shell(line, work, lab, {}) == 0, line
            if step.get("uses", "").startswith("actions/upload-artifact"):
                name = step["with"]["name"].replace("${{ matrix.site }}", site)
                path = step["with"]["path"].replace("${{ matrix.site }}", site)
                shutil.copytree(work / path, artifacts / name)  # the folder's contents
    work = _workspace(tmp_path, "github-report", sites)
    for step in report["steps"]:
        if step.get("uses", "").startswith("actions/download-artifact"):
            shutil.copytree(artifacts, work / step["with"]["path"])  # each as <name>/
        elif "run" in step and not _installs(step["run"]):
            assert _shell(step["run"], work, lab, {}) == 0, step["run"]
    fleet = json.loads((work / "reports" / "fleet.json").read_text())
    # The artifacts' folders are named site-<name>; the rows carry the sites' own names.
    assert sorted(row["name"] for row in fleet["sites"]) == sorted(sites)
    assert {row["exit"] for row in fleet["sites"]} == {0}
