"""Fixtures for API tests: an app over a temp SQLite store with a token per role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from ledger.config import ROLES, Settings
from projections.engine.registry import PROJECTION_NAMES
from shell.composition import compose
from tests.conftest import TEST_CIPHER_KEY, FakeClock

TOKENS = {role: f"{role}-{uuid.uuid4().hex}" for role in ROLES}  # random: LEDGER_API_TOKENS refuses weak ones


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def open_services(url: str, data_dir: Path, clock: FakeClock | None = None, **api: object) -> Services:
    settings = Settings(database_url=url, data_dir=data_dir, cipher_key=TEST_CIPHER_KEY,
                        api_tokens=",".join(f"{r}={t}" for r, t in TOKENS.items()), **api)  # type: ignore[arg-type]
    return Services.open(compose(settings, clock))


def caught_up(svc: Services, names: tuple[str, ...] = PROJECTION_NAMES) -> int:
    """Wait until the read models reached the log's head (the runner of `create_app(background=True)`
    feeds them); the position they reached."""
    position = svc.wait_for(names, svc.reads.head())
    assert position is not None, "the projection runner did not catch up"
    return position


@pytest.fixture
def api_services(tmp_path: Path) -> Iterator[Services]:
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    yield services
    services.close()


@pytest.fixture
def client(api_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(api_services, background=True), raise_server_exceptions=False) as test_client:
        yield test_client
