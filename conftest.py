"""Root plugin of the suite: command-line options and the fixture plugins under `fixtures/`.

The site file is loaded and validated once, before any test, whenever the run includes the suite
(`setup_steps/` or `checks/`); the project's own tests under `tests/` need no site.

pytest decides its rootdir before it reads these options, so a site file outside the project is
given as `--site=PATH` (with `=`) or through `SMARTID_SITE`.
"""

import gc

import pytest

pytest_plugins = [
    "fixtures.site",
    "fixtures.lab",
    "fixtures.clients",
    "fixtures.steps",
    "fixtures.reporting",
    "fixtures.checks",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smartid", "Smart ID suite")
    group.addoption(
        "--site",
        metavar="PATH",
        default=None,
        help="site file (default: $SMARTID_SITE, else sites/lab.toml)",
    )
    group.addoption(
        "--plan",
        action="store_true",
        default=False,
        help="setup: report what each step would change, change nothing",
    )
    group.addoption(
        "--lab-state",
        metavar="DIR",
        default=None,
        help="lab state directory (default: $SMARTID_LAB_STATE, else .lab/)",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    # What exists now (plugins, the site model, the collected tests) lives until the run ends.
    # Moving it out of the garbage collector's view spares every later collection a walk over
    # it, among them the full collections pytest runs at exit (about 0.1 s of each run).
    gc.freeze()
