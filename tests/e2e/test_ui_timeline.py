"""Timelines in the web UI, and proof bundles an auditor verifies offline with the documented
verifier (docs/audit.md)."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from audit.checkpoint import Signer
from audit.offline_verifier import checkpoint_message, leaf_hash, verify_inclusion
from ledger.domain.ids import stock_id
from ledger.results import Placed
from ledger.storage import event_log
from tests.api_fixtures import TOKENS, open_services, ui_sign_in
from tests.audit_helpers import build
from tests.helpers import buy, delivered_codes, head, import_batch, place, stocked_product

Clients = Callable[[str | None], TestClient]
ROW = re.compile(r'<tr class="event" data-position="(\d+)"')


@pytest.fixture
def svc(api_services: Services) -> Services:
    return api_services  # tests/api_fixtures.py: a ledger on SQLite with a token per role


@pytest.fixture
def clients(svc: Services) -> Iterator[Callable[[str | None], TestClient]]:
    """Clients of one app over `svc`, signed in with a role's token (None: not signed in)."""
    with ExitStack() as stack:

        def signed_in(role: str | None) -> TestClient:
            client = stack.enter_context(TestClient(create_app(svc)))
            if role is not None:
                got = ui_sign_in(client, TOKENS[role], follow_redirects=False)
                assert got.status_code == 303, got.text
            return client

        yield signed_in


def positions(html: str) -> list[int]:
    return [int(p) for p in ROW.findall(html)]


def sign(svc: Services) -> int:
    """Sign a checkpoint of the whole log, as `ledger audit checkpoint` does; its last position."""
    signer, _ = Signer.load(svc.settings.signing_key_path)
    return build(svc.settings, signer).last_position


def history(svc: Services) -> tuple[Placed, list[str]]:
    """A paid order for two keys, and every code imported."""
    codes = stocked_product(svc.ledger, "GAME-1", 3)
    placed, _ = buy(svc.ledger, "alice", "GAME-1", 2)
    return placed, codes


def verify_bundle(bundle: dict[str, Any]) -> bool:
    """The auditor's check, as docs/audit.md "The offline verifier" and "Proof bundles" say."""
    cp = bundle["checkpoint"]
    root = bytes.fromhex(cp["root_hash"])
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(cp["public_key"])).verify(
            base64.b64decode(cp["signature"]),
            checkpoint_message(cp["tree_size"], root, cp["timestamp"], cp["last_position"]))
    except InvalidSignature:
        return False
    proof = bundle["inclusion"]
    leaf = base64.b64decode(bundle["event"]["leaf"])
    return (proof["tree_size"] == cp["tree_size"]
            and int.from_bytes(leaf[1:9], "big") == bundle["event"]["position"]
            and verify_inclusion(proof["leaf_index"], cp["tree_size"], leaf_hash(leaf),
                                 [bytes.fromhex(h) for h in proof["proof"]], root))


def test_an_orders_timeline_lists_its_events_in_log_order_with_metadata(svc: Services, clients: Clients) -> None:
    placed, codes = history(svc)
    client = clients("finance")
    got = client.get(f"/ui/timeline/order/{placed.order_id}")
    assert got.status_code == 200, got.text
    found = positions(got.text)
    assert found == sorted(found) and len(found) >= 4
    for name in ("Order.Placed", "Order.KeysReserved", "Order.PaymentCaptured", "Order.KeysDelivered",
                 "Payment.Recorded", "Key.Delivered"):
        assert f'data-type="{name}"' in got.text, name
    placed_row = got.text[got.text.index('data-type="Order.Placed"'):]
    placed_row = placed_row[:placed_row.index("</tr>")]
    assert "storefront" in placed_row  # the actor
    assert re.search(r'class="mono">[0-9a-f]{32}</td>', placed_row)  # its correlation id
    assert f'href="/ui/events/{found[0]}"' in got.text
    for code in codes:
        assert code not in got.text


def test_a_keys_strip_shows_its_life_after_a_paid_order(svc: Services, clients: Clients) -> None:
    placed, codes = history(svc)
    client = clients("analyst")
    key_id = placed.key_ids[0]
    got = client.get(f"/ui/timeline/key/{key_id}")
    assert got.status_code == 200, got.text
    strip = got.text[got.text.index('id="key-life"'):got.text.index("</ol>")]
    assert re.findall(r'data-state="(\w+)"', strip) == ["received", "reserved", "delivered"]
    assert 'data-type="Stock.Reserved"' in got.text and 'data-type="Key.Registered"' in got.text
    assert positions(got.text) == sorted(positions(got.text))
    for code in codes + delivered_codes(svc.ledger, placed.order_id):
        assert code not in got.text
    assert "sealed_code" not in got.text and "code_hmac" not in got.text


def test_customer_sku_and_batch_timelines(svc: Services, clients: Clients) -> None:
    _, codes = history(svc)
    imported = import_batch(svc.ledger, "GAME-1", [f"BATCH-{n:04d}-XQ7Z" for n in range(30)])
    runner = svc.components.runner(["facts"])
    try:
        runner.catch_up()  # a customer's orders are found through the facts read model
    finally:
        runner.close()
    client = clients("finance")
    customer = client.get("/ui/timeline/customer/alice")
    assert customer.status_code == 200 and 'data-type="Order.Placed"' in customer.text
    batch = client.get(f"/ui/timeline/batch/{imported.batch_id}")
    assert batch.status_code == 200 and "30 keys registered" in batch.text
    assert 'data-type="Key.Registered"' not in batch.text and "BATCH-0001" not in batch.text
    assert "and 20 more" in batch.text  # 30 key ids cut short
    for _ in range(3):
        place(svc.ledger, "bob", "GAME-1", 1)
    newest = client.get("/ui/timeline/sku/GAME-1?", params={})
    stock_events = len(svc.reads.stream_page(stock_id("GAME-1"), limit=1000))
    assert newest.status_code == 200 and len(positions(newest.text)) == min(100, stock_events + 1)
    assert client.get("/ui/timeline/sku/NOPE").status_code == 404
    assert client.get(f"/ui/timeline/order/{imported.batch_id}").status_code == 404  # a batch, not an order
    for page in (customer, batch, newest):
        for code in codes:
            assert code not in page.text


def test_the_sku_timeline_pages_by_position(svc: Services, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    history(svc)
    monkeypatch.setattr("api.ui.timeline.PAGE", 3)
    client = clients("analyst")
    first = client.get("/ui/timeline/sku/GAME-1")
    shown = positions(first.text)
    assert len(shown) == 3 and shown == sorted(shown)
    older = re.search(r'href="\?before=(\d+)"', first.text)
    assert older and int(older.group(1)) == shown[0]
    second = positions(client.get(f"/ui/timeline/sku/GAME-1?before={shown[0]}").text)
    assert second and max(second) < shown[0] and second == sorted(second)


def test_a_downloaded_bundle_verifies_offline_and_fails_when_a_byte_changes(svc: Services, clients: Clients) -> None:
    placed, _ = history(svc)
    sign(svc)
    client = clients("finance")
    page = client.get(f"/ui/timeline/order/{placed.order_id}").text
    found = positions(page)
    assert all(f'href="/ui/proofs/{p}.json"' in page for p in found)
    for position in found:
        got = client.get(f"/ui/proofs/{position}.json")
        assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
        bundle = got.json()
        assert bundle["event"]["position"] == position and verify_bundle(bundle)
    leaf = bytearray(base64.b64decode(bundle["event"]["leaf"]))
    for offset in (9, len(leaf) - 1):  # the aggregate's id; the stored (encrypted) state
        tampered = json.loads(json.dumps(bundle))
        changed = leaf.copy()
        changed[offset] ^= 1
        tampered["event"]["leaf"] = base64.b64encode(bytes(changed)).decode()
        assert not verify_bundle(tampered)

    # One byte of the stored event changed in the table: the bundle served now no longer verifies.
    with sqlite3.connect(svc.settings.data_dir / "ledger.sqlite") as conn:
        state = conn.execute("SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchone()[0]
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                     (bytes([state[0] ^ 1]) + state[1:], position))
    conn.close()
    after = client.get(f"/ui/proofs/{position}.json").json()
    assert after["inclusion"] == bundle["inclusion"] and not verify_bundle(after)


def test_events_after_the_checkpoint_are_not_covered(svc: Services, clients: Clients) -> None:
    placed, _ = history(svc)
    last = sign(svc)
    later = place(svc.ledger, "alice", "GAME-1", 1)
    assert head(svc.ledger) > last
    client = clients("finance")
    page = client.get(f"/ui/timeline/order/{later.order_id}").text
    rows = page.split('<tr class="event"')[1:]
    assert rows and all("not covered yet" in row and "/ui/proofs/" not in row for row in rows)
    assert client.get(f"/ui/proofs/{head(svc.ledger)}.json").status_code == 404
    covered = client.get(f"/ui/timeline/order/{placed.order_id}").text
    assert "not covered yet" not in covered.split('<tbody>')[1].split(f'data-position="{last + 1}"')[0]


def test_analyst_opens_timelines_but_not_bundles_and_storefront_neither(svc: Services, clients: Clients) -> None:
    placed, _ = history(svc)
    sign(svc)
    analyst = clients("analyst")
    page = analyst.get(f"/ui/timeline/order/{placed.order_id}")
    assert page.status_code == 200 and "covered" in page.text and "/ui/proofs/" not in page.text
    assert analyst.get("/ui/proofs/1.json").status_code == 403
    storefront = clients("storefront")
    assert storefront.get(f"/ui/timeline/order/{placed.order_id}").status_code == 403
    anonymous = clients(None)
    got = anonymous.get(f"/ui/timeline/order/{placed.order_id}", follow_redirects=False)
    assert got.status_code == 303 and got.headers["location"].startswith("/ui/login")


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_streams_pages_carry_positions_newest_first(store: str, tmp_path: Path, request: pytest.FixtureRequest
                                                      ) -> None:
    url = request.getfixturevalue("pg_url") if store == "postgres" else f"sqlite:///{tmp_path / 'l.sqlite'}"
    services = open_services(url, tmp_path)
    try:
        history(services)
        place(services.ledger, "bob", "GAME-1", 1)
        logged = [(n.id, n.originator_version) for n in event_log.notifications(services.ledger.app)
                  if n.originator_id == stock_id("GAME-1")]
        whole = services.reads.stream_page(stock_id("GAME-1"), limit=1000)
        assert [(p, e.originator_version) for p, e in whole] == logged[::-1]
        middle = services.reads.stream_page(stock_id("GAME-1"), after=logged[0][0], before=logged[-1][0], limit=1)
        assert [p for p, _ in middle] == [logged[-2][0]]
    finally:
        services.close()


def test_a_keys_strip_follows_it_to_redemption_or_revocation(svc: Services, clients: Clients) -> None:
    stocked_product(svc.ledger, "GAME-1", 2)
    kept, _ = buy(svc.ledger, "alice", "GAME-1", 1)
    [code] = delivered_codes(svc.ledger, kept.order_id)
    svc.ledger.redeem(svc.ledger.context("alice"), code=code, account_id="acct-1")
    refunded, _ = buy(svc.ledger, "bob", "GAME-1", 1)
    svc.ledger.refund_order(svc.ledger.context("support"), refunded.order_id, amount="10.00",
                            reason="customer_request")
    client = clients("finance")
    for placed, last in ((kept, "redeemed"), (refunded, "revoked")):
        page = client.get(f"/ui/timeline/key/{placed.key_ids[0]}").text
        strip = page[page.index('id="key-life"'):page.index("</ol>")]
        assert re.findall(r'data-state="(\w+)"', strip) == ["received", "reserved", "delivered", last]
        assert code not in page
