"""Proof routes and checkpoints as finance meets them: through `ledger serve`'s app and the
`ledger audit` commands, checked with the offline verifier."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.services import Services
from audit.checkpoint import Checkpoint, Signer
from audit.offline_verifier import verify_consistency, verify_inclusion
from audit.rows import EventReader, leaf_hashes
from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger
from shell.cli.audit import audit as audit_cli
from tests.api_fixtures import auth, open_services
from tests.conftest import TEST_CIPHER_KEY
from tests.helpers import buy, head, stocked_product
from tests.unit.test_audit_merkle import mth


def _history(ledger: Ledger, orders: int = 4) -> None:
    stocked_product(ledger, "GAME-1", 2 * orders)
    for n in range(orders):
        buy(ledger, f"customer-{n}", "GAME-1", 2)


def _followed(svc: Services, timeout: float = 20.0) -> int:
    """Wait for the server's follower to put every event in the tree; the tree size."""
    deadline = time.monotonic() + timeout
    while (tree := svc.audit().head())[1] < head(svc.ledger):
        assert time.monotonic() < deadline, "the audit follower fell behind"
        time.sleep(0.05)
    return tree[0]


def _leaves(settings: Settings) -> tuple[list[int], list[bytes]]:
    """Positions and leaf hashes recomputed from the stored rows, independently of the tree."""
    reader = EventReader(settings)
    try:
        rows = reader.read(0, 1_000_000)
    finally:
        reader.close()
    return [row[0] for row in rows], leaf_hashes(rows)


def test_inclusion_and_consistency_proofs_verify_offline(client: TestClient, api_services: Services) -> None:
    _history(api_services.ledger)
    size = _followed(api_services)
    positions, leaves = _leaves(api_services.settings)
    assert size == len(leaves)
    finance = auth("finance")
    for index, position in enumerate(positions):
        tree_size = index + 1 + (index * 7) % (size - index)  # a spread of sizes that hold the leaf
        got = client.get("/v1/audit/proofs/inclusion", params={"position": position, "tree_size": tree_size},
                         headers=finance)
        assert got.status_code == 200, got.text
        body = got.json()
        proof = [bytes.fromhex(h) for h in body["proof"]]
        root = bytes.fromhex(body["root_hash"])
        assert (body["leaf_index"], body["tree_size"], root) == (index, tree_size, mth(leaves[:tree_size]))
        assert bytes.fromhex(body["leaf_hash"]) == leaves[index]
        assert verify_inclusion(index, tree_size, leaves[index], proof, root)
        assert not verify_inclusion(index, tree_size, bytes([leaves[index][0] ^ 1]) + leaves[index][1:], proof, root)
    for first in range(1, size + 1, 3):
        got = client.get("/v1/audit/proofs/consistency", params={"first": first}, headers=finance).json()
        proof = [bytes.fromhex(h) for h in got["proof"]]
        assert got["second"] == size and bytes.fromhex(got["first_root"]) == mth(leaves[:first])
        assert verify_consistency(first, size, mth(leaves[:first]), mth(leaves), proof)


def test_proof_routes_refuse_clearly(client: TestClient, api_services: Services) -> None:
    _history(api_services.ledger, orders=1)
    size = _followed(api_services)
    finance = auth("finance")
    assert client.get("/v1/audit/proofs/inclusion", params={"position": 1}, headers=auth("analyst")).status_code == 403
    assert client.get("/v1/audit/proofs/inclusion", params={"position": 1}).status_code == 401
    missing = client.get("/v1/audit/proofs/inclusion", params={"position": 10_000}, headers=finance)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    for path, params, field in (
        ("inclusion", {"position": 1, "tree_size": size + 1}, "tree_size"),
        ("inclusion", {"position": 0}, "position"),
        ("inclusion", {"position": 3, "tree_size": 2}, "tree_size"),
        ("consistency", {"first": size + 1}, "first"),
        ("consistency", {"first": 1, "second": size + 5}, "second"),
    ):
        got = client.get(f"/v1/audit/proofs/{path}", params=params, headers=finance)
        assert got.status_code == 422, (path, params, got.text)
        assert field in got.text


def test_serve_signs_checkpoints_periodically_and_exports_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("LEDGER_AUDIT_CHECKPOINT_INTERVAL_S", "0.2")
    monkeypatch.setenv("LEDGER_AUDIT_CHECKPOINT_DIR", str(folder))
    svc = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    try:
        with TestClient(create_app(svc, background=True)) as client:
            _history(svc.ledger, orders=2)
            size = _followed(svc)
            deadline = time.monotonic() + 20
            while not (folder / f"checkpoint-{size:012d}.json").exists():
                assert time.monotonic() < deadline, "no checkpoint of the whole tree was signed"
                time.sleep(0.05)
            latest = client.get("/v1/audit/checkpoints/latest", headers=auth("finance")).json()
    finally:
        svc.close()
    exported = Checkpoint.read(folder / f"checkpoint-{size:012d}.json")
    assert exported.signed_by([svc.audit_keys()[0]]) and exported.to_json() == latest
    assert exported.root_hash == mth(_leaves(svc.settings)[1])
    assert oct(svc.settings.signing_key_path.stat().st_mode & 0o777) == "0o600"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    ledger = open_ledger(Settings(data_dir=data, cipher_key=TEST_CIPHER_KEY))
    try:
        _history(ledger, orders=3)
    finally:
        ledger.close()
    return {"LEDGER_DATA_DIR": str(data), "LEDGER_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing.key")}


def test_cli_checkpoint_then_verify_passes_and_tampering_fails(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    made = runner.invoke(audit_cli, ["checkpoint", "--out", "cp.json"], env=env)
    assert made.exit_code == 0, made.output
    checkpoint = Checkpoint.read(tmp_path / "cp.json")
    assert f"tree size {checkpoint.tree_size}" in made.output
    assert checkpoint.signed_by([Signer.load(tmp_path / "keys" / "signing.key")[0].public_key])
    passed = runner.invoke(audit_cli, ["verify", "--from-checkpoint", "cp.json"], env=env)
    assert passed.exit_code == 0 and "verification passed" in passed.output, passed.output
    assert runner.invoke(audit_cli, ["verify"], env=env).exit_code == 0  # the stored checkpoint, same key

    with sqlite3.connect(tmp_path / "data" / "ledger.sqlite") as conn:
        conn.execute("UPDATE stored_events SET topic = 'ledger.domain.orders:Order.Refunded' WHERE rowid = 7")
    conn.close()
    failed = runner.invoke(audit_cli, ["verify", "--from-checkpoint", "cp.json"], env=env)
    assert failed.exit_code == 1
    assert "MISMATCH at position 7 (leaf 6): changed" in failed.output and "FORKED" in failed.output


def test_cli_refuses_a_bad_or_altered_checkpoint_file(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(audit_cli, ["checkpoint", "--out", "cp.json"], env=env).exit_code == 0
    (tmp_path / "broken.json").write_text('{"format": ')
    broken = runner.invoke(audit_cli, ["verify", "--from-checkpoint", "broken.json"], env=env)
    assert broken.exit_code == 1 and "broken.json:1: not JSON" in broken.output
    data = json.loads((tmp_path / "cp.json").read_text())
    data["tree_size"] -= 1  # claim a shorter tree under the same signature
    (tmp_path / "altered.json").write_text(json.dumps(data))
    altered = runner.invoke(audit_cli, ["verify", "--from-checkpoint", "altered.json"], env=env)
    assert altered.exit_code == 1 and "BAD SIGNATURE" in altered.output
