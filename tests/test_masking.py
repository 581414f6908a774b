"""Secrets never reach an attachment, a log line or a printed message."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smartid.masking import MASK, Masker, Secret, encoded_forms, find_leaks

SECRET = "Sup3r-secret-value-42"


def test_masker_removes_value_and_base64_at_every_offset() -> None:
    masker = Masker()
    masker.register(Secret(SECRET, "test"))
    for prefix in ("", "a", "ab", "abc", "hermod:"):
        blob = base64.b64encode(f"{prefix}{SECRET}!".encode()).decode()
        masked = masker.mask(f"Authorization: Basic {blob}")
        assert not any(form in masked for form in encoded_forms(SECRET)), prefix
    assert masker.mask(f"password={SECRET};") == f"password={MASK};"


def test_secret_cannot_be_pickled() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret(SECRET, "test"))


def test_find_leaks_reports_value_and_base64(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"x {SECRET} y")
    (tmp_path / "b.json").write_text(base64.b64encode(f"idm:{SECRET}".encode()).decode())
    (tmp_path / "c.txt").write_text("clean")
    leaks = find_leaks(tmp_path, [Secret(SECRET, "env P")])
    assert [(leak.path.name, leak.form) for leak in leaks] == [
        ("a.txt", "value"),
        ("b.json", "base64"),
    ]
    assert SECRET not in " ".join(str(leak) for leak in leaks)


def test_attachment_log_and_failure_are_masked_in_allure_results(tmp_path: Path) -> None:
    """A real pytest + allure-pytest run: the secret is used everywhere, reported nowhere."""
    (tmp_path / "test_leaky.py").write_text(
        textwrap.dedent(f"""
        import base64, logging
        from smartid.masking import MASKER, Secret
        from smartid.report.seam import attach_json, attach_text, install_log_masking, step

        SECRET = Secret({SECRET!r}, "test")
        MASKER.register(SECRET)
        install_log_masking()

        def test_uses_secret():
            value = SECRET.reveal()
            token = base64.b64encode(("idm:" + value).encode()).decode()
            with step("login with " + value):
                attach_text("request", "Authorization: Basic " + token)
                attach_json("body", {{"password": value}})
                logging.getLogger("smartid").warning("sent password %s", value)
    """)
    )
    results = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--alluredir={results}",
            "--log-level=INFO",
            "test_leaky.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    attachments = list(results.glob("*-attachment*"))
    assert len(attachments) >= 3
    assert any(MASK in path.read_text() for path in attachments)
    assert find_leaks(results, [Secret(SECRET, "test")]) == []
    assert SECRET not in done.stdout + done.stderr
