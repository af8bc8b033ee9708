"""Throwaway stores for the benchmarks: a fresh database (PostgreSQL) or file (SQLite) that is
removed afterwards, and a ledger over it."""

from __future__ import annotations

import base64
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg

from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger


@contextmanager
def throwaway_store(settings: Settings) -> Iterator[tuple[str, str]]:
    """(database URL, description) of a fresh store; removed afterwards."""
    if settings.is_postgres:
        url = urlparse(settings.effective_database_url)
        name = f"ledger_bench_{uuid.uuid4().hex[:12]}"
        admin = urlunparse(url._replace(scheme="postgresql"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunparse(url._replace(scheme="postgresql", path=f"/{name}")), f"PostgreSQL database {name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            path = Path(tmp) / "bench.sqlite"
            yield f"sqlite:///{path}", f"SQLite file {path}"


def bench_ledger(url: str, data_dir: Path, *, pool: int = 4) -> Ledger:
    """A ledger over the store at `url` (a `throwaway_store`), with a fresh random cipher key
    and a pool of `pool` connections."""
    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        cipher_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        postgres_pool_size=max(2, pool),
    )
    return open_ledger(settings)
