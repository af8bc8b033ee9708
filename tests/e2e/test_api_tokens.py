"""Tokens as an attacker meets them: a stolen token an admin revokes stops working in every
process, weak tokens in LEDGER_API_TOKENS stop the server at start, events name the caller by
an id an analyst cannot test a guessed token against, a read-model database cannot mint a
token, and guessing tokens (API or UI sign-in) from one address is cut off with 429."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import limits
from api.app import create_app
from api.services import Services
from ledger.config import Settings
from shell.cli import app as cli_app
from shell.composition import compose
from tests.api_fixtures import TOKENS, auth, open_services, ui_sign_in
from tests.conftest import TEST_CIPHER_KEY
from tests.served import Served

PATIENCE_S = 30  # a revocation is seen within about a second; a loaded CI machine gets more


def _cli_env(data_dir: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({"LEDGER_DATABASE_URL": f"sqlite:///{data_dir / 'ledger.sqlite'}", "LEDGER_DATA_DIR": str(data_dir),
                "LEDGER_CIPHER_KEY": TEST_CIPHER_KEY, "LEDGER_AUDIT_CHECKPOINT_INTERVAL_S": "0", **more})
    return env


def _ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from shell.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def _until(check: Callable[[], bool], what: str) -> None:
    """Poll `check` until it holds (no timing is asserted: the deadline only ends a hung test)."""
    deadline = time.monotonic() + PATIENCE_S
    while not check():
        assert time.monotonic() < deadline, f"not within {PATIENCE_S} s: {what}"
        time.sleep(0.1)


# ---- revocation ----


@pytest.fixture
def served_two_workers(tmp_path: Path) -> Iterator[tuple[Served, dict[str, str]]]:
    env = _cli_env(tmp_path, LEDGER_API_TOKENS=f"admin={TOKENS['admin']}")
    server = Served(env, tmp_path / "serve.log", workers=2)
    server.start()
    try:
        yield server, env
    finally:
        server.stop()


def test_a_stolen_token_an_admin_revokes_is_refused_by_every_worker(
        served_two_workers: tuple[Served, dict[str, str]]) -> None:
    server, env = served_two_workers
    admin = auth("admin")
    made = _ledger(env, "tokens", "create", "--role", "finance")
    assert made.returncode == 0, made.stderr
    stolen, token_id = made.stdout.strip(), made.stderr.split(" token ")[1].split()[0]

    def answers() -> set[int]:  # a new connection per request: uvicorn spreads them over both workers
        return {httpx.get(f"{server.base_url}/v1/reconciliation", headers=_bearer(stolen), timeout=30).status_code
                for _ in range(20)}

    assert answers() == {200}  # both workers now hold the token as valid
    listed = httpx.get(f"{server.base_url}/v1/tokens", headers=admin, timeout=30)
    assert listed.status_code == 200 and stolen not in listed.text
    assert {"token_id": token_id, "role": "finance", "source": "stored"}.items() <= next(
        t for t in listed.json()["tokens"] if t["token_id"] == token_id).items()

    revoked = httpx.post(f"{server.base_url}/v1/tokens/{token_id}/revoke", headers=admin, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
    _until(lambda: answers() == {401}, "every worker refuses the revoked token")
    assert answers() == {401}
    listed_by_cli = _ledger(env, "tokens", "list")
    assert token_id in listed_by_cli.stdout and stolen not in listed_by_cli.stdout


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


def _sql(url: str, *statements: tuple[str, tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Run statements on the store's database the way someone with write access would; the last one's rows."""
    rows: list[tuple[object, ...]] = []
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            for statement, params in statements:
                rows = db.execute(statement, params).fetchall()
        return rows
    with psycopg.connect(url, autocommit=True) as conn:
        for statement, params in statements:
            cursor = conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            rows = cursor.fetchall() if cursor.description else []
    return rows


def test_a_revocation_in_one_process_reaches_another_on_the_same_store(store_url: str, tmp_path: Path) -> None:
    """Two serving processes' services over one store: an env token and a stored one, revoked
    through the first, are refused by the second, which had them cached as valid."""
    url = store_url
    first, second = open_services(url, tmp_path), open_services(url, tmp_path)
    try:
        _, stored = first.tokens.store.create("storefront")
        with TestClient(create_app(first)) as one, TestClient(create_app(second)) as two:
            for token in (stored, TOKENS["finance"]):
                assert two.get("/v1/inventory", headers=_bearer(token)).status_code in (200, 403)
            ids = {t["role"]: t["token_id"] for t in one.get("/v1/tokens", headers=auth("admin")).json()["tokens"]}
            for role in ("storefront", "finance"):
                assert one.post(f"/v1/tokens/{ids[role]}/revoke", headers=auth("admin")).status_code == 200
            for token in (stored, TOKENS["finance"]):
                _until(lambda t=token: two.get("/v1/inventory", headers=_bearer(t)).status_code == 401,  # type: ignore[misc]
                       "the other process refuses the revoked token")
            assert two.get("/v1/inventory", headers=auth("storefront")).status_code == 200  # others still work
            assert one.post("/v1/tokens/tok_0000000000000000/revoke", headers=auth("admin")).status_code == 404
    finally:
        first.close()
        second.close()


def test_the_tokens_commands_list_without_secrets_and_revoke_by_id(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _cli_env(tmp_path, LEDGER_API_TOKENS=f"analyst={TOKENS['analyst']}")
    made = runner.invoke(cli_app, ["tokens", "create", "--role", "partner"], env=env)
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    listed = runner.invoke(cli_app, ["tokens", "list"], env=env)
    assert listed.exit_code == 0 and secret not in listed.output and TOKENS["analyst"] not in listed.output
    token_ids = [w for w in listed.output.split() if w.startswith(("tok_", "env_"))]
    assert len(token_ids) == 2 and any(w.startswith("env_") for w in token_ids), listed.output
    stored_id = next(w for w in token_ids if w.startswith("tok_"))
    revoked = runner.invoke(cli_app, ["tokens", "revoke", stored_id], env=env)
    assert revoked.exit_code == 0 and "revoked partner token" in revoked.output, revoked.output
    assert runner.invoke(cli_app, ["tokens", "revoke", "tok_nope"], env=env).exit_code == 1
    services = _services(env)
    try:
        with TestClient(create_app(services)) as client:
            assert client.get("/v1/inventory", headers=_bearer(secret)).status_code == 401
    finally:
        services.close()


def _services(env: dict[str, str]) -> Services:
    """What a served process opens from `env`."""
    return Services.open(compose(Settings(
        database_url=env["LEDGER_DATABASE_URL"], data_dir=Path(env["LEDGER_DATA_DIR"]), cipher_key=TEST_CIPHER_KEY,
        api_tokens=env.get("LEDGER_API_TOKENS", ""))))


# ---- where tokens live ----


def test_a_token_written_into_a_read_model_database_is_not_honoured(tmp_path: Path) -> None:
    """A host with its own read-model database (`project run --from-kafka`) writes an admin
    token into it, in the old table and the new one: the server does not know it."""
    views = tmp_path / "views.sqlite"
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, views_database_url=f"sqlite:///{views}")
    forged = "forged-" + uuid.uuid4().hex
    digest = hashlib.sha256(forged.encode()).hexdigest()
    with sqlite3.connect(views) as db:
        db.execute("CREATE TABLE IF NOT EXISTS api_tokens (token_hash TEXT PRIMARY KEY, role TEXT, created_at TEXT)")
        db.execute("INSERT INTO api_tokens VALUES (?, 'admin', '2026-01-01T00:00:00Z')", (digest,))
        db.execute("CREATE TABLE IF NOT EXISTS auth_tokens (token_id TEXT PRIMARY KEY, secret_sha256 TEXT UNIQUE,"
                   " role TEXT, source TEXT, created_at TEXT, last_used_at TEXT, revoked_at TEXT)")
        db.execute("INSERT INTO auth_tokens VALUES ('tok_00000000deadbeef', ?, 'admin', 'stored', NULL, NULL, NULL)",
                   (digest,))
    try:
        with TestClient(create_app(services)) as client:
            assert client.get("/v1/tokens", headers=_bearer(forged)).status_code == 401
            assert client.get("/v1/tokens", headers=auth("admin")).status_code == 200
    finally:
        services.close()


def test_tokens_of_the_earlier_table_keep_working(store_url: str, tmp_path: Path) -> None:
    """A store whose tokens were kept by hash in `api_tokens` beside the events: they move to
    the new table with an id each, and the old table is gone."""
    old = "old-" + uuid.uuid4().hex
    _sql(store_url, ("CREATE TABLE api_tokens (token_hash TEXT PRIMARY KEY, role TEXT NOT NULL, created_at TEXT)", ()),
         ("INSERT INTO api_tokens VALUES (?, 'finance', '2026-01-01T00:00:00Z')",
          (hashlib.sha256(old.encode()).hexdigest(),)))
    services = open_services(store_url, tmp_path)
    try:
        with TestClient(create_app(services)) as client:
            assert client.get("/v1/ledger/trial-balance", headers=_bearer(old)).status_code == 200
            listed = client.get("/v1/tokens", headers=auth("admin")).json()["tokens"]
            assert [t["created_at"] for t in listed if t["source"] == "stored"] == ["2026-01-01T00:00:00Z"]
    finally:
        services.close()
    assert _sql(store_url, ("SELECT COUNT(*) FROM auth_tokens", ())) == [(1,)]
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.UndefinedTable)):
        _sql(store_url, ("SELECT * FROM api_tokens", ()))


# ---- env tokens ----


@pytest.mark.parametrize(("token", "why"), [
    ("s3cret", "has 6 characters, fewer than 32"),
    ("a" * 40, "different characters"),
    ("passwordpasswordpasswordpassword12", "repeats pieces of itself"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "neighbouring characters"),
])
def test_a_weak_env_token_stops_the_server_at_start(tmp_path: Path, token: str, why: str) -> None:
    env = _cli_env(tmp_path, LEDGER_API_TOKENS=f"storefront={uuid.uuid4().hex},admin={token}")
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"], env=env)
    assert result.exit_code == 1, result.output
    assert "LEDGER_API_TOKENS: the admin token (entry 2)" in result.output and why in result.output
    assert token not in result.output.replace("LEDGER_API_TOKENS", "")
    assert not (tmp_path / "ledger.sqlite").exists()  # refused before the store was opened
    with pytest.raises(ValueError, match="LEDGER_API_TOKENS"):
        _services(env)  # a worker process of `ledger serve` too


def test_events_name_the_caller_by_an_id_no_guess_can_be_checked_against(tmp_path: Path) -> None:
    """An analyst reads the audit feed: the actor of each order names its token by an id that
    is neither the token nor any plain hash of it (an env token's is keyed with a server secret,
    a stored token's is random)."""
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    try:
        _, stored = services.tokens.store.create("storefront")
        with TestClient(create_app(services)) as client:
            sku = "TOK-1"
            assert client.post("/v1/products", headers=auth("admin"), json={
                "sku": sku, "name": "Key", "face_value": "10.00", "currency": "USD", "price": "9.00",
            }).status_code == 201
            assert client.post(f"/v1/products/{sku}/batches", headers=auth("admin"), json={
                "supplier": "acme", "unit_cost": "5.00", "codes": ["TOK-A-1", "TOK-A-2"]}).status_code == 201
            for token in (TOKENS["storefront"], stored):
                placed = client.post("/v1/orders", headers=_bearer(token),
                                     json={"customer_id": "c-1", "sku": sku, "quantity": 1})
                assert placed.status_code == 201, placed.text
            feed = client.get("/v1/audit/events", headers=auth("analyst"), params={"type": "Order.Placed"})
            assert feed.status_code == 200, feed.text
            actors = [e["data"]["meta"]["actor"] for e in feed.json()["events"]]
            listed = client.get("/v1/tokens", headers=auth("admin")).json()["tokens"]
        ids = {t["token_id"] for t in listed if t["role"] == "storefront"}
        assert sorted(actors) == sorted(f"storefront:{i}" for i in ids), actors
        text = json.dumps(feed.json())
        for token in (TOKENS["storefront"], stored):
            assert token not in text
            for algorithm in ("md5", "sha1", "sha256", "sha512", "blake2b", "sha3_256"):
                digest = hashlib.new(algorithm, token.encode()).hexdigest()
                assert all(digest[i:i + 8] not in text for i in range(len(digest) - 7)), algorithm
    finally:
        services.close()


# ---- guessing and limits ----


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """Low limits, and one minute that does not turn during the test (the windows are per minute)."""
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: 60 * 29_000_000 + 1.0))
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, auth_failures_per_minute=3,
                             rate_limit_per_minute=2)
    yield services
    services.close()


def test_repeated_unknown_tokens_from_one_address_get_429(limited: Services) -> None:
    app = create_app(limited)
    with TestClient(app, client=("203.0.113.9", 4000)) as guesser, \
            TestClient(app, client=("198.51.100.7", 4000)) as neighbour:
        assert guesser.get("/v1/inventory", headers=auth("storefront")).status_code == 200
        guesses = [guesser.get("/v1/inventory", headers=_bearer(uuid.uuid4().hex)) for _ in range(6)]
        assert [g.status_code for g in guesses] == [401, 401, 401, 429, 429, 429]
        assert guesses[-1].headers["retry-after"] == "60"
        assert guesses[-1].headers["content-type"] == "application/problem+json"
        # A token the server already holds valid still works from there; the limit is the address's.
        assert guesser.get("/v1/inventory", headers=auth("storefront")).status_code == 200
        assert neighbour.get("/v1/inventory", headers=_bearer(uuid.uuid4().hex)).status_code == 401


def test_failed_ui_sign_ins_from_one_address_get_429(limited: Services) -> None:
    with TestClient(create_app(limited), client=("203.0.113.10", 4000)) as browser:
        tries = [ui_sign_in(browser, uuid.uuid4().hex, follow_redirects=False) for _ in range(5)]
        assert [t.status_code for t in tries] == [401, 401, 401, 429, 429]
        assert "Too many unknown tokens" in tries[-1].text


def test_the_rate_limit_counts_a_token_once_however_its_header_is_written(limited: Services) -> None:
    assert Settings().rate_limit_per_minute > 0  # on by default
    with TestClient(create_app(limited)) as client:
        answers = [client.post("/v1/redemptions", json={"code": "NOPE-1", "account_id": "a"},
                               headers=_bearer(TOKENS["partner"], scheme)) for scheme in ("Bearer", "bearer", "BEARER")]
    assert [a.status_code for a in answers] == [404, 404, 429]


@pytest.mark.parametrize("role", sorted(set(TOKENS) - {"admin"}))
def test_a_stolen_token_of_another_role_can_neither_list_nor_revoke_tokens(tmp_path: Path, role: str) -> None:
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    try:
        with TestClient(create_app(services)) as http:
            listed = http.get("/v1/tokens", headers=auth("admin")).json()["tokens"]
            admin_id = next(t["token_id"] for t in listed if t["role"] == "admin")
            assert http.get("/v1/tokens", headers=auth(role)).status_code == 403
            assert http.post(f"/v1/tokens/{admin_id}/revoke", headers=auth(role)).status_code == 403
            assert http.get("/v1/tokens", headers=auth("admin")).status_code == 200  # the admin's still works
            assert not any(t["revoked_at"] for t in http.get("/v1/tokens", headers=auth("admin")).json()["tokens"])
    finally:
        services.close()
