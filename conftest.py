"""Root plugin of the suite: the fixture plugins under `fixtures/`.

The site file is loaded and validated once, before any test, whenever the run includes the suite
(`setup_steps/` or `checks/`); the project's own tests under `tests/` need no site.

The command-line options (`--site`, `--plan`, `--lab-state`) come from the installed plugin
`smartid_pytest.plugin`, which pytest loads before it looks for this file; it is named here too, for
a run with plugin autoloading switched off. `fixtures.selection` keeps setup steps to `-m setup`.
"""

import gc

import pytest

from smartid.forkrun import SUITE_PLUGINS

# The fixture plugins are named once, in smartid.forkrun, whose warm server preloads them.
pytest_plugins = ["smartid_pytest.plugin", *SUITE_PLUGINS]


def pytest_collection_finish(session: pytest.Session) -> None:
    # What exists now (plugins, the site model, the collected tests) lives until the run ends.
    # Moving it out of the garbage collector's view spares every later collection a walk over
    # it, among them the full collections pytest runs at exit (about 0.1 s of each run).
    gc.freeze()
