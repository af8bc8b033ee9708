"""The UI's finance and risk pages: the same numbers as the API, each page only for its roles,
bad input as a 4xx page naming the field, the last checkpoint and verification, a scalper's alert
leading to the events behind it, and never an imported code.

One app with a background runner over SQLite: a product, a purchase, a scalper's six quick
purchases (velocity fires for the customer, the IP and the device), and a refund."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.services import Services
from api.ui import finance
from audit.verification import Finding, Verification
from shell.cli.audit import audit as audit_cli
from tests.api_fixtures import TOKENS, auth, open_services, ui_sign_in
from tests.conftest import FakeClock
from tests.helpers import buy, head, stocked_product

VIEWS = ("facts", "inventory", "fraud", "journal")
SCALPER, SCALPER_IP, SCALPER_DEVICE = "scalper", "198.51.100.7", "dev-scalp"


@dataclass
class World:
    client: TestClient
    svc: Services
    url: str
    data_dir: Path
    codes: list[str]
    first: int  # the position after alice's purchase
    head: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("ui-finance-risk")
    clock = FakeClock()
    url = f"sqlite:///{tmp / 'ledger.sqlite'}"
    svc = open_services(url, tmp, clock=clock, read_wait_s=2.0, audit_checkpoint_interval_s=0)
    ledger = svc.ledger
    codes = stocked_product(ledger, "GAME-1", 10, price="10.00", unit_cost="6.00")
    clock.advance(hours=1)
    alice, _ = buy(ledger, "alice", "GAME-1", 1)
    first = head(ledger)
    clock.advance(hours=1)
    for _ in range(6):  # more than 5 orders inside 10 minutes
        buy(ledger, SCALPER, "GAME-1", 1, client_ip=SCALPER_IP, device_id=SCALPER_DEVICE)
        clock.advance(seconds=30)
    clock.advance(hours=1)
    ledger.refund_order(ledger.context("admin"), alice.order_id, amount="10.00", reason="asked")
    with TestClient(create_app(svc, background=True), raise_server_exceptions=False) as client:
        assert svc.wait_for(VIEWS, head(ledger)) is not None
        yield World(client, svc, url, tmp, codes, first, head(ledger))
    svc.close()


# ---- a small HTML tree, enough to find rows and cells ----

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Any]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants `tag` with these attributes (`class_` is one of the classes; `data_x` is data-x)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and all(child.matches(k, v) for k, v in attrs.items()):
                    found.append(child)
                found += child.find_all(tag, **attrs)
        return found

    def matches(self, name: str, value: str) -> bool:
        if name == "class_":
            return value in self.attrs.get("class", "").split()
        return self.attrs.get(name.replace("_", "-")) == value

    def links(self) -> list[str]:
        return [a.attrs["href"] for a in self.find_all("a")]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("document", {}, [])
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, [])
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(html: str) -> Node:
    tree = _Tree()
    tree.feed(html)
    return tree.root


def one(nodes: list[Node]) -> Node:
    assert len(nodes) == 1, [n.attrs for n in nodes]
    return nodes[0]


def cells(row: Node) -> dict[str, str]:
    return {td.attrs["data-col"]: td.text().strip() for td in row.find_all("td") if "data-col" in td.attrs}


# ---- helpers ----


def sign_in(world: World, role: str) -> None:
    response = ui_sign_in(world.client, TOKENS[role], follow_redirects=False)
    assert response.status_code == 303, response.text


def ui(world: World, role: str, path: str, status: int = 200, **params: object) -> Node:
    sign_in(world, role)
    response = world.client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


def api(world: World, role: str, path: str, **params: object) -> dict[str, Any]:
    response = world.client.get(path, params=params, headers=auth(role))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def event_time(world: World, position: int) -> str:
    [(_, event)] = world.svc.reads.log_page(position - 1, 1, stop=position)
    moment: str = event.timestamp.isoformat()
    return moment


# ---- finance ----


@pytest.mark.parametrize("point", ["now", "as_of", "as_of_time"])
def test_trial_balance_page_shows_the_apis_numbers(world: World, point: str) -> None:
    params: dict[str, object] = {
        "now": {}, "as_of": {"as_of": world.first}, "as_of_time": {"as_of_time": event_time(world, world.first)},
    }[point]
    expected = api(world, "finance", "/v1/ledger/trial-balance", **params)
    doc = ui(world, "finance", "/ui/finance", **params)
    section = one(doc.find_all("section", id="trial-balance"))
    assert section.attrs["data-position"] == str(expected["position"])
    assert expected["position"] == (world.head if point == "now" else world.first)
    assert expected["accounts"]
    for account in expected["accounts"]:
        row = one(section.find_all("tr", data_account=account["account"], data_currency=account["currency"]))
        assert cells(row) == {"debit": account["debit"], "credit": account["credit"], "balance": account["balance"]}
        assert f"/ui/finance/accounts/{account['account']}" in row.links()[0]
    for total in expected["totals"]:
        row = one(section.find_all("tr", data_total=total["currency"]))
        assert cells(row) == {"debit": total["debit"], "credit": total["credit"]}
    # and the revenue account's page: its entries and balance, as GET /v1/ledger/accounts/revenue
    account = api(world, "finance", "/v1/ledger/accounts/revenue", **params)
    page = ui(world, "finance", "/ui/finance/accounts/revenue", **params)
    entries = page.find_all("tr", class_="entry")
    assert [int(e.attrs["data-position"]) for e in entries] == [e["position"] for e in account["entries"]]
    assert [cells(e) for e in entries] == [{"debit": e["debit"], "credit": e["credit"]} for e in account["entries"]]
    for balance in account["balances"]:
        assert cells(one(page.find_all("tr", data_currency=balance["currency"]))) == {
            "debit": balance["debit"], "credit": balance["credit"], "balance": balance["balance"]}


def test_as_of_changes_the_numbers(world: World) -> None:
    now = ui(world, "finance", "/ui/finance")
    then = ui(world, "finance", "/ui/finance", as_of=world.first)

    def revenue(doc: Node) -> dict[str, str]:
        return cells(one(doc.find_all("tr", data_account="revenue", data_currency="USD")))

    assert revenue(then) == {"debit": "0.00", "credit": "10.00", "balance": "-10.00"}  # alice's purchase only
    assert revenue(now)["credit"] == "70.00"  # and the scalper's six


@pytest.mark.parametrize(("path", "params", "field", "status"), [
    ("/ui/finance", {"as_of": 10**9}, "as_of", 422),  # beyond the log's head
    ("/ui/finance", {"as_of": "abc"}, "as_of", 422),
    ("/ui/finance", {"as_of": "-1"}, "as_of", 422),
    ("/ui/finance", {"as_of_time": "yesterday-ish"}, "as_of_time", 422),
    ("/ui/finance", {"as_of": 1, "as_of_time": "2026-03-01T12:00:00Z"}, "as_of_time", 422),  # not both
    ("/ui/finance/accounts/revenue", {"as_of": 10**9}, "as_of", 422),
    ("/ui/finance/accounts/revenue", {"after": "x"}, "after", 422),
    ("/ui/finance/accounts/no-such-account", {}, "account", 404),
    ("/ui/risk", {"rule": "no-such-rule"}, "rule", 422),
    ("/ui/risk/subjects/planet/earth", {}, "kind", 404),
])
def test_bad_input_is_a_page_naming_the_field(world: World, path: str, params: dict[str, object], field: str,
                                              status: int) -> None:
    role = "risk" if path.startswith("/ui/risk") else "finance"
    doc = ui(world, role, path, status, **params)
    alert = one(doc.find_all("p", id="bad-input"))
    assert alert.attrs["data-field"] == field and alert.text().strip().startswith(field)


@pytest.mark.parametrize(("role", "path", "status"), [
    ("storefront", "/ui/finance", 403),
    ("analyst", "/ui/finance", 403),
    ("risk", "/ui/finance", 403),
    ("storefront", "/ui/finance/accounts/revenue", 403),
    ("analyst", "/ui/finance/accounts/revenue", 403),
    ("storefront", "/ui/risk", 403),
    ("storefront", f"/ui/risk/subjects/customer/{SCALPER}", 403),
    ("finance", "/ui/risk", 403),
    ("admin", "/ui/finance", 200),
    ("admin", "/ui/risk", 200),
])
def test_each_page_only_for_its_roles(world: World, role: str, path: str, status: int) -> None:
    doc = ui(world, role, path, status)
    if status == 403:
        assert not doc.find_all("section", id="trial-balance") and not doc.find_all("section", id="rule-counts")
    nav = [a.attrs["href"] for a in one(doc.find_all("nav")).find_all("a")]
    assert ("/ui/finance" in nav) == (role in ("finance", "admin"))
    assert ("/ui/risk" in nav) == (role in ("risk", "admin"))


def test_signed_out_finance_redirects_to_sign_in(world: World) -> None:
    world.client.post("/ui/logout")
    response = world.client.get("/ui/finance", params={"as_of": 3}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=")


def test_reconciliation_is_shown(world: World) -> None:
    expected = api(world, "finance", "/v1/reconciliation")
    section = one(ui(world, "finance", "/ui/finance").find_all("section", id="reconciliation"))
    assert expected["clean"]
    assert section.find_all("p", data_clean="true") and not section.find_all("tr", class_="exception")
    assert section.find_all("tr", data_currency="USD")


def test_last_checkpoint_and_verification(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = one(ui(world, "finance", "/ui/finance").find_all("section", id="audit"))
    if not audit.find_all("dl", id="checkpoint"):  # before anyone signed or verified
        assert "None signed yet" in audit.text()
    assert "Never verified" in audit.text()
    store = world.svc.audit()
    deadline = 200
    while store.head()[1] < world.head and deadline:  # let the server's follower catch up first
        deadline -= 1
        time.sleep(0.05)
    for name in [n for n in os.environ if n.startswith("LEDGER_")]:
        monkeypatch.delenv(name)
    env = {"LEDGER_DATABASE_URL": world.url, "LEDGER_DATA_DIR": str(world.data_dir),
           "LEDGER_AUDIT_SIGNING_KEY_FILE": str(world.svc.settings.signing_key_path)}  # the server's key
    runner = CliRunner()
    signed = runner.invoke(audit_cli, ["checkpoint"], env=env)
    assert signed.exit_code == 0, signed.output
    verified = runner.invoke(audit_cli, ["verify"], env=env)
    assert verified.exit_code == 0 and "verification passed" in verified.output, verified.output

    latest = api(world, "finance", "/v1/audit/checkpoints/latest")
    cp = store.latest_checkpoint()
    assert cp is not None
    record = store.latest_verification()
    assert record is not None and record.ok and record.checkpoint_status == "consistent"
    assert record.events == world.head and record.checkpoint_size == cp.tree_size
    audit = one(ui(world, "finance", "/ui/finance").find_all("section", id="audit"))
    shown = one(audit.find_all("dl", id="checkpoint"))
    values = {dd.attrs["data-col"]: dd.text().strip() for dd in shown.find_all("dd") if "data-col" in dd.attrs}
    assert values["tree_size"] == str(latest["tree_size"]) == str(cp.tree_size)
    assert values["timestamp"] == latest["timestamp"]
    assert one(shown.find_all("code", data_col="root_hash")).text() == latest["root_hash"]
    assert one(shown.find_all("code", data_col="key_id")).text() == cp.key_id
    assert "valid (a pinned key)" in shown.text()  # the server's key: the CLI signed with it
    assert cp.key_id in signed.output
    verification = one(audit.find_all("dl", id="verification"))
    assert verification.attrs["data-ok"] == "true" and "passed" in verification.text()


def test_a_failed_verification_names_the_first_mismatch(world: World) -> None:
    failed = Verification(events=world.head, tree_size=world.head, root=b"\x07" * 32,
                          first=Finding("changed", 7, 6, "the event at position 7 differs"))
    world.svc.audit().add_verification(failed.record(datetime.now(UTC) + timedelta(seconds=1)))
    audit = one(ui(world, "finance", "/ui/finance").find_all("section", id="audit"))
    shown = one(audit.find_all("dl", id="verification"))
    assert shown.attrs["data-ok"] == "false" and "FAILED" in shown.text()
    assert "changed" in shown.text() and "/ui/events/7" in shown.links()


def test_account_entries_page_by_position(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finance, "ENTRIES", 2)
    expected = [(e["position"], e["entry_no"]) for e in
                api(world, "finance", "/v1/ledger/accounts/payment_clearing", limit=1000)["entries"]]
    assert len(expected) > 4
    seen: list[tuple[int, int]] = []
    path, params = "/ui/finance/accounts/payment_clearing", {}
    for _ in range(len(expected)):
        page = ui(world, "finance", path, **params)
        rows = page.find_all("tr", class_="entry")
        seen += [(int(r.attrs["data-position"]), int(r.find_all("td")[1].text())) for r in rows]
        following = page.find_all("a", id="next-page")
        if not following:
            break
        path, _, query = following[0].attrs["href"].partition("?")
        params = dict(pair.split("=") for pair in query.split("&"))
    assert seen == expected


# ---- risk ----


def test_scalper_alert_under_its_rule_leads_to_its_evidence(world: World) -> None:
    [alert] = api(world, "risk", "/v1/fraud/alerts", rule="velocity", subject_kind="customer")["alerts"]
    assert alert["subject_id"] == SCALPER and len(alert["positions"]) == 6
    doc = ui(world, "risk", "/ui/risk")
    counts = one(one(doc.find_all("section", id="rule-counts")).find_all("tr", data_rule="velocity"))
    assert cells(counts) == {"alerts": "3", "subjects": "3"}  # customer, IP and device
    assert cells(one(doc.find_all("tr", data_rule="resale"))) == {"alerts": "0", "subjects": "0"}
    section = one(doc.find_all("section", id="rule-velocity"))
    row = one(section.find_all("tr", class_="alert", data_subject_kind="customer", data_subject_id=SCALPER))
    subject_page = f"/ui/risk/subjects/customer/{SCALPER}"
    assert subject_page in row.links()

    filtered = ui(world, "risk", "/ui/risk", rule="velocity")
    assert [s.attrs["data-rule"] for s in filtered.find_all("section", class_="rule")] == ["velocity"]
    assert len(filtered.find_all("tr", class_="alert")) == 3

    expected = api(world, "risk", f"/v1/fraud/subjects/customer/{SCALPER}")
    page = ui(world, "risk", subject_page)
    assert one(page.find_all("dd", data_col="score")).text() == str(expected["score"])
    counter = one(one(page.find_all("section", id="counters")).find_all("tr", data_rule="velocity"))
    score = str(expected["rule_scores"]["velocity"])
    assert cells(counter) == {"count": str(alert["count"]), "level": "1", "score": score}
    events = one(page.find_all("section", id="evidence")).find_all("tr", class_="event")
    positions = [int(e.attrs["data-position"]) for e in events]
    assert positions == sorted(alert["positions"])
    for event, position in zip(events, positions, strict=True):
        links = event.links()
        assert f"/ui/events/{position}" in links
        assert any(link.startswith("/ui/timeline/order/") for link in links)
        assert "Order.Placed" in event.text()
    order_links = {link for e in events for link in e.links() if link.startswith("/ui/timeline/order/")}
    assert len(order_links) == 6  # one per order

    for kind, ident in (("ip", SCALPER_IP), ("device", SCALPER_DEVICE)):
        other = ui(world, "risk", f"/ui/risk/subjects/{kind}/{ident}")
        assert len(other.find_all("tr", class_="event")) == 6


def test_a_subject_never_alerted(world: World) -> None:
    page = ui(world, "risk", "/ui/risk/subjects/customer/alice")
    assert "Never alerted" in one(page.find_all("section", id="subject")).text()
    assert not page.find_all("tr", class_="event")


# ---- secrets ----


def test_no_page_contains_an_imported_code(world: World) -> None:
    pages = [("finance", "/ui/finance", {}), ("finance", "/ui/finance", {"as_of": world.first})]
    pages += [("finance", f"/ui/finance/accounts/{a['account']}", {})
              for a in api(world, "finance", "/v1/ledger/trial-balance")["accounts"]]
    pages += [("risk", "/ui/risk", {}), ("risk", "/ui/risk", {"rule": "velocity"})]
    pages += [("risk", f"/ui/risk/subjects/{a['subject_kind']}/{a['subject_id']}", {})
              for a in api(world, "risk", "/v1/fraud/alerts")["alerts"]]
    assert len(pages) > 8
    for role, path, params in pages:
        sign_in(world, role)
        html = world.client.get(path, params=params).text
        leaked = [code for code in world.codes if code in html]
        assert not leaked, f"{path} shows imported codes"
