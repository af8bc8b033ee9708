"""Shared fixtures: a ledger on SQLite (default) or on a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger
from tests import profiles  # noqa: F401  (registers the hypothesis profiles: HYPOTHESIS_PROFILE=deep)

pytest_plugins = ["tests.api_fixtures", "tests.demo_history", "tests.browser"]  # shared fixtures for every test module

PG_ADMIN_URL = os.environ.get("LEDGER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_CIPHER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 fixed bytes


@pytest.fixture(scope="session", autouse=True)
def audit_signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The checkpoint signing key lives outside any data directory (audit.keys): one for the
    session, in a folder of its own, for every store, server and CLI the tests start (they
    inherit the environment). XDG_CONFIG_HOME too, so that a test clearing LEDGER_* never
    writes the real ~/.config/ledger."""
    folder = tmp_path_factory.mktemp("audit-keys")
    folder.chmod(0o700)
    saved = {name: os.environ.get(name) for name in ("LEDGER_AUDIT_SIGNING_KEY_FILE", "XDG_CONFIG_HOME")}
    os.environ["LEDGER_AUDIT_SIGNING_KEY_FILE"] = str(folder / "audit-signing.key")
    os.environ["XDG_CONFIG_HOME"] = str(folder / "config")
    yield folder / "audit-signing.key"
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass
class FakeClock:
    now: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL; in CI a missing server is a failure, never a skip."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable (start it: pg_ctlcluster ... main start)")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


LedgerFactory = Callable[..., Ledger]


@pytest.fixture
def make_ledger(tmp_path: Path, clock: FakeClock) -> Iterator[LedgerFactory]:
    """Open ledgers on SQLite in tmp_path (or on `url`); all are closed at teardown."""
    opened: list[Ledger] = []

    def make(url: str | None = None, **overrides: object) -> Ledger:
        settings = Settings(
            database_url=url or f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            data_dir=tmp_path,
            cipher_key=TEST_CIPHER_KEY,
            **overrides,  # type: ignore[arg-type]
        )
        ledger = open_ledger(settings, clock=clock)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger: LedgerFactory) -> Ledger:
    return make_ledger()


@pytest.fixture
def pg_ledger(make_ledger: LedgerFactory, pg_url: str) -> Ledger:
    return make_ledger(pg_url)
