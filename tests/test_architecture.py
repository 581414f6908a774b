"""The dependency rules of the project (docs/architecture.md), read from the import statements of
every Python file: a rule broken anywhere fails here with the file, the line and the import.

1. The suite's library (`src/smartid` outside `smartid.lab`) never imports the lab: a real
   deployment has none.
2. The lab imports nothing of the suite's clients or test glue, only the foundations and the
   vendor formats it shares with the suite: a bug in shared client code would be mirrored on
   both sides and no test would see it.
3. Only the reporting seam imports allure.
4. The library never imports pytest.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEAM = "smartid.report.seam"
# What the lab may take from the suite's side: foundations, the site model (to complete a lab
# site) and the formats whose vendor-shaped test data pins them (zip safety, Hermod's YAML).
LAB_MAY_IMPORT = frozenset(
    {
        "smartid.errors",
        "smartid.files",
        "smartid.masking",
        "smartid.safezip",
        "smartid.site",
        "smartid.hermod.clients",
        "smartid.hermod.config",
        "smartid.hermod.yaml",
    }
)
ALLURE = ("allure", "allure_commons", "allure_pytest")
GLUE = ("conftest", "fixtures", "checks", "setup_steps", "tests", "bench", "smartid_pytest")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted name of the importing module
    path: str  # relative to the project's root
    line: int
    module: str  # dotted name of what is imported

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root / "src" if path.is_relative_to(root / "src") else root)
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path) -> Iterator[Import]:
    """Every import in the project's Python files, also those inside functions; `from a import
    b` counts as importing the module `a.b` when there is one, else `a`."""
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") or part == "node_modules" for part in path.parts):
            continue
        importer = module_name(path, root)
        shown = str(path.relative_to(root))
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(importer, shown, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for name in {_imported(base, alias.name, root) for alias in node.names}:
                    yield Import(importer, shown, node.lineno, name)


def _imported(base: str, name: str, root: Path) -> str:
    candidate = f"{base}.{name}"
    parts = candidate.split(".")
    for folder in (root / "src", root):
        where = folder.joinpath(*parts)
        if where.with_suffix(".py").is_file() or (where / "__init__.py").is_file():
            return candidate
    return base


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(root: Path) -> list[str]:
    """Each broken rule, as 'file:line imports module: rule'."""
    found: list[str] = []
    for imp in imports(root):
        library = _within(imp.importer, "smartid") and not _within(imp.importer, "smartid.lab")
        lab = _within(imp.importer, "smartid.lab")
        if library and _within(imp.module, "smartid.lab"):
            found.append(f"{imp}: the suite's library never imports the lab")
        shared = _within(imp.module, "smartid") and not _within(imp.module, "smartid.lab")
        if lab and shared and imp.module not in LAB_MAY_IMPORT:
            found.append(f"{imp}: the lab uses only foundations and shared formats")
        if lab and any(_within(imp.module, glue) for glue in GLUE):
            found.append(f"{imp}: the lab never imports the suite's test glue")
        if imp.module.split(".")[0] in ALLURE and imp.importer != SEAM:
            found.append(f"{imp}: only {SEAM} imports allure")
        if _within(imp.importer, "smartid") and _within(imp.module, "pytest"):
            found.append(f"{imp}: the library never imports pytest")
    return sorted(set(found))


def test_the_project_keeps_its_dependency_rules() -> None:
    found = violations(ROOT)
    assert not found, "\n".join(["the project breaks its dependency rules:", *found])


# --- the rules can fail ------------------------------------------------------------------------

_TREE = {
    "src/smartid/__init__.py": "",
    "src/smartid/errors.py": "",
    "src/smartid/http.py": "",
    "src/smartid/lab/__init__.py": "",
    "src/smartid/lab/app.py": "from smartid import errors\nfrom smartid.lab import app\n",
    "src/smartid/report/__init__.py": "",
    "src/smartid/report/seam.py": "import allure\n",
    "fixtures/__init__.py": "",
    "fixtures/lab.py": "from smartid.lab import app\n",
}


@pytest.mark.parametrize(
    ("file", "source", "rule"),
    [
        pytest.param(
            "src/smartid/deployment.py",
            "from smartid.lab.app import start\n",
            "src/smartid/deployment.py:1 imports smartid.lab.app: the suite's library never",
            id="library-imports-lab",
        ),
        pytest.param(
            "src/smartid/verify/drift.py",
            "def f():\n    import smartid.lab\n",
            "src/smartid/verify/drift.py:2 imports smartid.lab: the suite's library never",
            id="library-imports-lab-lazily",
        ),
        pytest.param(
            "src/smartid/lab/calls.py",
            "from smartid.http import session\n",
            "src/smartid/lab/calls.py:1 imports smartid.http: the lab uses only foundations",
            id="lab-uses-suite-client",
        ),
        pytest.param(
            "src/smartid/lab/calls.py",
            "from ..http import session\n",
            "src/smartid/lab/calls.py:1 imports smartid.http: the lab uses only foundations",
            id="lab-uses-suite-client-relatively",
        ),
        pytest.param(
            "src/smartid/lab/calls.py",
            "from fixtures.lab import app\n",
            "src/smartid/lab/calls.py:1 imports fixtures.lab: the lab never imports the suite's",
            id="lab-imports-glue",
        ),
        pytest.param(
            "fixtures/steps.py",
            "import allure\n",
            "fixtures/steps.py:1 imports allure: only smartid.report.seam imports allure",
            id="allure-outside-the-seam",
        ),
        pytest.param(
            "src/smartid/report/results.py",
            "from allure_commons import plugin_manager\n",
            "src/smartid/report/results.py:1 imports allure_commons",
            id="allure-commons-outside-the-seam",
        ),
        pytest.param(
            "src/smartid/plan.py",
            "import pytest\n",
            "src/smartid/plan.py:1 imports pytest: the library never imports pytest",
            id="library-imports-pytest",
        ),
    ],
)
def test_a_broken_rule_is_named_with_file_and_line(
    tmp_path: Path, file: str, source: str, rule: str
) -> None:
    for name, text in {**_TREE, file: source}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(rule)


def test_a_tree_that_keeps_the_rules_has_no_violations(tmp_path: Path) -> None:
    for name, text in _TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == []


def test_every_page_the_project_points_to_exists() -> None:
    """Code and docs cite the project's own pages (docs/*.md, bench/README.md): each must exist."""
    cited = re.compile(r"\b(?:docs/[\w.-]+\.md|bench/README\.md)")
    missing = []
    for path in sorted([*ROOT.rglob("*.py"), *ROOT.rglob("*.md")]):
        if any(part.startswith(".") or part == "node_modules" for part in path.parts):
            continue
        for name in cited.findall(path.read_text(encoding="utf-8")):
            if not (ROOT / name).is_file():
                missing.append(f"{path.relative_to(ROOT)} cites {name}")
    assert not missing, "\n".join(missing)
