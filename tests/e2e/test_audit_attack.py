"""The audit against someone who can write the PostgreSQL database, attacking it with SQL: a
refund deleted and the tree rebuilt to match, the stored checkpoints deleted, a checkpoint
signed with the attacker's own key inserted. Whatever they do, `ledger audit verify` fails
naming why, and the server refuses to sign the rewritten tree and says so in /readyz,
/metrics and the log; the finance page does not call a forged checkpoint valid."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.services import Services
from audit.checkpoint import Signer
from shell.cli.audit import audit as audit_cli
from tests.api_fixtures import TOKENS, auth, open_services, ui_sign_in
from tests.audit_helpers import audit_log, rebuild_tree, settings_for
from tests.helpers import buy, stocked_product

REFUNDED = "ledger.domain.orders:Order.Refunded"


@dataclass(frozen=True)
class Store:
    url: str
    data: Path
    env: dict[str, str]  # of the `ledger` commands


@pytest.fixture
def store(pg_url: str, tmp_path: Path) -> Store:
    """A small store on PostgreSQL with one refund; the operator signed a checkpoint of it with
    `ledger audit checkpoint` (kept in the database and in the checkpoint directory)."""
    data = tmp_path / "data"
    svc = open_services(pg_url, data)
    try:
        stocked_product(svc.ledger, "GAME-1", 10)
        orders = [buy(svc.ledger, f"customer-{n}", "GAME-1", 2)[0] for n in range(3)]
        svc.ledger.refund_order(svc.ledger.context("admin"), orders[0].order_id, amount="20.00", reason="goodwill")
        buy(svc.ledger, "customer-3", "GAME-1", 2)  # the history goes on after the refund
    finally:
        svc.close()
    env = {"LEDGER_DATABASE_URL": pg_url, "LEDGER_DATA_DIR": str(data)}
    signed = CliRunner().invoke(audit_cli, ["checkpoint"], env=env)
    assert signed.exit_code == 0, signed.output
    return Store(pg_url, data, env)


def verify(store: Store, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(audit_cli, ["verify", *args], env=store.env)
    return done.exit_code, done.output


def sql(store: Store, *statements: str) -> None:
    """The attacker's session on the database."""
    with psycopg.connect(store.url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def serving(store: Store) -> tuple[Services, TestClient]:
    svc = open_services(store.url, store.data, audit_checkpoint_interval_s=3600)
    return svc, TestClient(create_app(svc, background=True))


def refused(client: TestClient) -> str:
    """Why, as /readyz reports it once the server's first checkpoint attempt (at start) has
    been refused."""
    for _ in range(400):
        ready = client.get("/readyz").json()
        if ready.get("audit_checkpoint_refused"):
            reason: str = ready["audit_checkpoint_refused"]
            return reason
        time.sleep(0.05)
    raise AssertionError(f"the server did not refuse: {ready}")


def test_a_deleted_refund_with_the_tree_rebuilt_and_the_checkpoints_deleted_is_caught(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    code, output = verify(store)
    assert code == 0 and "verification passed" in output, output

    sql(store, f"DELETE FROM ledger_events WHERE topic = '{REFUNDED}'")
    svc = open_services(store.url, store.data)
    try:  # the shop goes on
        buy(svc.ledger, "customer-4", "GAME-1", 2)
    finally:
        svc.close()
    rebuild_tree(settings_for(store.url, store.data))  # the attacker's cover-up: audit_leaves, audit_nodes
    sql(store, "DELETE FROM audit_checkpoints")

    code, output = verify(store)  # finds the checkpoint the server kept outside the database
    assert code == 1 and "verification FAILED" in output
    assert "MISSING from audit_checkpoints: deleted from the database; against the log: FORKED" in output
    assert "forked:" in output  # where: at or after the leaf of the newest checkpoint that still agrees

    caplog.set_level(logging.ERROR, logger="api.background")
    svc, client = serving(store)
    try:
        with client:
            assert "is not consistent with the last checkpoint signed" in refused(client)
            metrics = client.get("/metrics").text
            assert "ledger_audit_checkpoint_refused 1.0" in metrics
    finally:
        svc.close()
    assert "audit checkpoint refused: the tree of" in caplog.text and "RFC 9162 consistency proof" in caplog.text
    with psycopg.connect(store.url) as conn:  # nothing signed
        assert conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone() == (0,)
    assert CliRunner().invoke(audit_cli, ["checkpoint"], env=store.env).exit_code == 1  # nor by hand


def test_events_cut_off_after_the_checkpoint_are_refused(store: Store) -> None:
    """Deleting the newest events (and waiting for a restart) leaves a tree shorter than the
    last checkpoint signed."""
    sql(store, f"DELETE FROM ledger_events WHERE notification_id >= (SELECT notification_id FROM ledger_events "
               f"WHERE topic = '{REFUNDED}')")  # the refund and everything after it
    rebuild_tree(settings_for(store.url, store.data))
    sql(store, "DELETE FROM audit_checkpoints")
    code, output = verify(store)
    assert code == 1 and "TRUNCATED" in output
    signed = CliRunner().invoke(audit_cli, ["checkpoint"], env=store.env)
    assert signed.exit_code == 1 and "refused to sign" in signed.output and "events were removed" in signed.output


def test_a_checkpoint_signed_by_the_attackers_own_key_is_refused(store: Store) -> None:
    """The attacker signs the tree head with a key of their own and inserts it where the server
    keeps its checkpoints: it names its key, and that key is not pinned."""
    svc = open_services(store.url, store.data)
    try:  # the shop goes on past the operator's checkpoint
        buy(svc.ledger, "customer-4", "GAME-1", 2)
        genuine = svc.audit().latest_checkpoint()
    finally:
        svc.close()
    settings = settings_for(store.url, store.data)
    with audit_log(settings) as log:
        log.catch_up()
        forged = Signer(Ed25519PrivateKey.generate()).sign(log.size, log.root(), log.position)
    sql_insert = ("INSERT INTO audit_checkpoints (tree_size, root_hash, last_position, created_at, signature, "
                  "public_key) VALUES (%s, %s, %s, %s, %s, %s)")
    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(sql_insert, (forged.tree_size, forged.root_hash, forged.last_position, forged.timestamp,
                                  forged.signature, forged.public_key))

    code, output = verify(store)
    assert code == 1 and f"by key {forged.key_id}) from audit_checkpoints: UNPINNED KEY" in output

    svc, client = serving(store)
    try:
        with client:
            assert f"signed by key {forged.key_id}, not this deployment's: inserted into the database" in \
                refused(client)
            latest = client.get("/v1/audit/checkpoints/latest", headers=auth("finance")).json()
            assert genuine is not None and latest["tree_size"] == genuine.tree_size < forged.tree_size
            signed_in = ui_sign_in(client, TOKENS["finance"], follow_redirects=False)
            assert signed_in.status_code == 303
            page = client.get("/ui/finance").text
            assert "NOT SIGNED BY A PINNED KEY" in page and forged.key_id in page
    finally:
        svc.close()


def test_verify_without_a_pinned_key_or_a_checkpoint_does_not_pass(store: Store, tmp_path: Path) -> None:
    """No pinned key: nothing to check a signature against; no checkpoint: nothing signed to
    hold the log to. Neither exits 0 as "verified"."""
    elsewhere = {**store.env, "LEDGER_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "absent" / "signing.key")}
    done = CliRunner().invoke(audit_cli, ["verify"], env=elsewhere)
    assert done.exit_code == 1 and "NOT VERIFIED: no pinned public key" in done.output

    sql(store, "DELETE FROM audit_checkpoints")
    code, output = verify(store, "--checkpoint-dir", str(tmp_path / "empty"))
    assert code == 1 and "NOT VERIFIED: no signed checkpoint" in output


def test_a_checkpoint_file_finance_kept_must_still_be_in_the_database(store: Store, tmp_path: Path) -> None:
    exported = CliRunner().invoke(audit_cli, ["checkpoint", "--out", str(tmp_path / "march.json")], env=store.env)
    assert exported.exit_code == 0
    public = CliRunner().invoke(audit_cli, ["public-key"], env=store.env).output.strip()
    (tmp_path / "pinned.pub").write_text(public + "\n")
    pinned_only = {**store.env, "LEDGER_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "absent" / "signing.key")}
    args = ["verify", "--checkpoint", str(tmp_path / "march.json"), "--public-key", str(tmp_path / "pinned.pub")]
    passed = CliRunner().invoke(audit_cli, args, env=pinned_only)  # an auditor's machine: no private key
    assert passed.exit_code == 0 and "verification passed" in passed.output, passed.output
    by_setting = CliRunner().invoke(audit_cli, ["verify"], env={**pinned_only, "LEDGER_AUDIT_PUBLIC_KEYS": public})
    assert by_setting.exit_code == 0, by_setting.output
    other = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    wrong = CliRunner().invoke(audit_cli, ["verify"], env={**store.env, "LEDGER_AUDIT_PUBLIC_KEYS": other})
    assert wrong.exit_code == 1 and "UNPINNED KEY" in wrong.output  # the pin decides, not the checkpoint

    sql(store, "DELETE FROM audit_checkpoints")
    failed = CliRunner().invoke(audit_cli, args, env=pinned_only)
    assert failed.exit_code == 1 and f"from {tmp_path / 'march.json'}: MISSING from audit_checkpoints" in failed.output
