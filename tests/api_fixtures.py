"""Fixtures for API tests: an app over a temp SQLite store with a token per role."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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
    # The TestClient speaks http://testserver, to which no client sends a `Secure` cookie back:
    # the UI's cookies go without it here, unless a test asks (tests/e2e/test_ui_security.py).
    api.setdefault("ui_secure_cookie", False)
    settings = Settings(database_url=url, data_dir=data_dir, cipher_key=TEST_CIPHER_KEY,
                        api_tokens=",".join(f"{r}={t}" for r, t in TOKENS.items()), **api)  # type: ignore[arg-type]
    return Services.open(compose(settings, clock))


def ui_sign_in(client: TestClient, token: str, next_url: str = "/ui/", **kwargs: Any) -> httpx.Response:
    """Sign in to the UI as a browser does: the sign-in page first (its CSRF cookie and field),
    then the form with the token."""
    form = client.get("/ui/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, f"no CSRF field on the sign-in page: {form.status_code}"
    return client.post("/ui/login", data={"token": token, "next": next_url, "csrf": found.group(1)}, **kwargs)


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
