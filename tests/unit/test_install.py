"""`pip install .` must give a working product: every third-party package a module of `src/`
imports is a core dependency, except the ones behind a documented extra (Kafka)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
FIRST_PARTY = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}  # our own packages
PROVIDED_BY = {"psycopg-pool": "psycopg"}  # installed through `psycopg[pool]`, the way psycopg documents it
OPTIONAL = {"kafka": "kafka"}  # import name -> the extra that installs it (`pip install .[kafka]`)


def _imported_top_level_names() -> dict[str, set[str]]:
    """Top-level module name -> the files of src/ that import it (at any depth, lazily or not)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(SRC)))
    return found


def _requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", line, maxsplit=1)[0].lower().replace("_", "-")


def test_every_imported_package_is_a_core_dependency() -> None:
    declared = requires("ledger") or []
    core = {_requirement_name(r) for r in declared if "extra ==" not in r}
    extras: dict[str, set[str]] = {}
    for r in declared:
        if "extra ==" in r:
            extras.setdefault(_requirement_name(r), set()).add(r.split("extra ==")[1].strip(" \"'"))
    distributions = packages_distributions()
    missing: list[str] = []
    for name, files in sorted(_imported_top_level_names().items()):
        if name in FIRST_PARTY or name in sys.stdlib_module_names or name == "__future__":
            continue
        dists = {d.lower().replace("_", "-") for d in distributions.get(name, [])}
        assert dists, f"{name} (imported by {sorted(files)}) is not installed at all"
        if name in OPTIONAL:
            extra = OPTIONAL[name]
            assert any(extra in extras.get(d, set()) for d in dists), f"{name} is not in the {extra} extra"
            continue
        if not {PROVIDED_BY.get(d, d) for d in dists} & core:
            missing.append(f"{name} ({', '.join(sorted(dists))}), imported by {', '.join(sorted(files))}")
    assert not missing, "imported but only in an extra or not declared: " + "; ".join(missing)


def test_the_api_packages_are_not_an_extra() -> None:
    core = {_requirement_name(r) for r in requires("ledger") or [] if "extra ==" not in r}
    assert {"fastapi", "uvicorn"} <= core
