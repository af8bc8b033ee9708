"""A store on SQLite and on PostgreSQL, for tests that must hold on both: `store_url`."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a SQLite file of its own folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'ledger.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    return url
