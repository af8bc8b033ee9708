"""`ledger serve`, `ledger tokens`, `ledger bench api`: joined to the `ledger` command
through the `ledger.cli` entry point."""

from __future__ import annotations

from typing import Any

import typer


def register(app: typer.Typer, groups: dict[str, Any]) -> None:
    """Entry point `ledger.cli`."""
