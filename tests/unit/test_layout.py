"""The packages' arrows point one way: shell → api → projections / audit → ledger.

A module may import its own package and any package below it, never one above or beside it
(projections and audit stand side by side and import neither each other), so the core can be
read, tested and reused without the shell, and a new module lands in the room of its job.
`simulators` (the upstream suppliers the product ships for tests and demos) imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# Each package, and the packages it may import.
ALLOWED: dict[str, set[str]] = {
    "shell": {"api", "projections", "audit", "ledger", "simulators"},
    "api": {"projections", "audit", "ledger"},
    "projections": {"ledger"},
    "audit": {"ledger"},
    "ledger": set(),
    "simulators": set(),
}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of each of our packages the module imports, wherever the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in ALLOWED}
    return found


def upward_imports(src: Path) -> list[str]:
    """Every import of a package a module's own package may not import, as `file:line: a -> b`."""
    wrong = []
    for package in sorted(ALLOWED):
        for path in sorted((src / package).rglob("*.py")):
            for line, target in sorted(imported_packages(path)):
                if target != package and target not in ALLOWED[package]:
                    wrong.append(f"{path.relative_to(src)}:{line}: {package} -> {target}")
    return wrong


def test_every_top_level_package_is_known() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), f"a new top-level package needs its place in ALLOWED: {packages - set(ALLOWED)}"


def test_arrows_between_packages_point_one_way() -> None:
    assert upward_imports(SRC) == []


@pytest.mark.parametrize(("package", "target"), [("ledger", "projections"), ("projections", "audit"),
                                                  ("api", "shell"), ("audit", "projections")])
def test_an_upward_import_is_caught(tmp_path: Path, package: str, target: str) -> None:
    """The check itself: a module that imports upward, even inside a function, is named."""
    module = tmp_path / package / "sneaky.py"
    module.parent.mkdir()
    (module.parent / "__init__.py").write_text("")
    module.write_text(f"def later() -> None:\n    from {target}.anything import thing\n")
    assert upward_imports(tmp_path) == [f"{package}/sneaky.py:2: {package} -> {target}"]
