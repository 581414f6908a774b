"""Fixtures of the project's own tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartid.report import allure_worker
from tests.helpers import ROOT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The project's test modules in the order `make test` hands them to its workers
    (`--dist loadscope --no-loadscope-reorder`): those marked `long` first, then the others by
    number of tests, largest first (what xdist's own reordering does). A long module of few tests
    (the fresh clone) would otherwise start last and finish alone. The tests of a module keep
    their order."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    if not all(name.startswith("tests/") for name in modules):
        return
    ordered = sorted(
        modules.values(),
        key=lambda tests: (tests[0].get_closest_marker("long") is None, -len(tests)),
    )
    items[:] = [item for tests in ordered for item in tests]


@pytest.fixture
def suite_env(tmp_path: Path) -> dict[str, str]:
    """Environment that keeps a suite run's state out of the project folder."""
    return {
        "SMARTID_LAB_STATE": str(tmp_path / "lab"),
        "SMARTID_STATE": str(tmp_path / "state"),
        "SMARTID_REPORTS": str(tmp_path / "reports"),
    }


@pytest.fixture(scope="session")
def shared_allure_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """One Allure worker (smartid.report.allure_worker) for the rest of this test process: its
    address goes into `$SMARTID_ALLURE_WORKER`, so every report the tests render after it starts
    (in this process and in the runs it starts with its environment) is made by one Node process,
    as a fleet's are, instead of one `allure generate` each (a render takes 2.0-2.3 s of CPU
    through `allure generate`, 0.4-0.8 s through the worker, which starts once for 1.0 s). Runs
    with a clean environment, the fresh clone and the test that compares the two ways still use
    `allure generate`. None (and nothing set) where Node or Allure is missing."""
    allure = ROOT / "node_modules" / ".bin" / "allure"
    if not allure.is_file() or os.environ.get(allure_worker.ENV):
        yield os.environ.get(allure_worker.ENV)
        return
    log = tmp_path_factory.mktemp("allure-worker") / "worker.log"
    with allure_worker.Worker(allure, log) as worker:
        address = worker.start()
        if address is not None:
            os.environ[allure_worker.ENV] = address
        try:
            yield address
        finally:
            if os.environ.get(allure_worker.ENV) == address:
                del os.environ[allure_worker.ENV]
