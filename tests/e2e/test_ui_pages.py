"""The UI's overview and event browser, through `ledger serve`'s app (TestClient, SQLite): the
same numbers as the API, charts drawn, panels that refresh, panels and pages by role, the log
paged and filtered, and never a card-key code on any page.

One app with a background projection runner serves the module; it is seeded once over four
days (one without sales) in two currencies, with a refund and a burst of orders from one IP
that trips the velocity rule."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from html import unescape
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.ui.charts import Series, chart, days_between, ticks
from projections.engine.registry import PROJECTION_NAMES
from tests.api_fixtures import TOKENS, auth, caught_up, open_services, ui_sign_in
from tests.conftest import FakeClock
from tests.helpers import buy, head, place, stocked_product

IP = "203.0.113.9"
VIEWS = PROJECTION_NAMES


@dataclass
class World:
    app: FastAPI
    api: TestClient  # the API, with bearer tokens
    svc: Services
    codes: list[str]
    order_id: str



@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("ui")
    clock = FakeClock()
    svc = open_services(f"sqlite:///{tmp / 'ledger.sqlite'}", tmp, clock=clock, read_wait_s=1.0)
    ledger = svc.ledger
    codes = stocked_product(ledger, "GAME-1", 20, price="10.00", unit_cost="6.00", low_stock_threshold=3)
    codes += stocked_product(ledger, "GIFT-EU", 6, price="20.00", currency="EUR", unit_cost="15.00")
    first, _ = buy(ledger, "alice", "GAME-1", 1)
    buy(ledger, "bob", "GIFT-EU", 1)
    clock.advance(days=1)
    second, _ = buy(ledger, "carol", "GAME-1", 2)
    clock.advance(days=2)  # a day without sales in between
    buy(ledger, "dave", "GAME-1", 1)
    ledger.refund_order(ledger.context("admin"), first.order_id, amount="5.00", reason="goodwill")
    for n in range(6):  # over velocity_max_orders (5): one velocity alert for the IP
        place(ledger, f"mallory-{n}", "GAME-1", 1, client_ip=IP)
    app = create_app(svc, background=True)
    with TestClient(app, raise_server_exceptions=False) as api:
        caught_up(svc)
        yield World(app, api, svc, codes, str(second.order_id))
    svc.close()


def signed_in(world: World, role: str) -> TestClient:
    """A browser of its own (cookies), signed in with the role's token."""
    browser = TestClient(world.app, raise_server_exceptions=False)
    response = ui_sign_in(browser, TOKENS[role])
    assert response.status_code == 200 and response.url.path == "/ui/", response.text
    return browser


def _section(html: str, ident: str) -> str | None:
    found = re.search(rf'<section class="card" id="{ident}">.*?</section>', html, re.S)
    return None if found is None else found.group(0)


def _stock(html: str) -> dict[str, dict[str, int]]:
    rows = re.findall(r'<tr data-sku="([^"]+)">(.*?)</tr>', html, re.S)
    return {sku: {col: int(n) for col, n in re.findall(r'data-col="(\w+)">(\d+)<', cells)} for sku, cells in rows}


def _positions(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr class="event" data-position="(\d+)"', html)]


def _link(html: str, ident: str) -> str | None:
    found = re.search(rf'id="{ident}" href="([^"]+)"', html)
    return None if found is None else unescape(found.group(1))


def _api_positions(world: World, **params: object) -> list[int]:
    body = world.api.get("/v1/audit/events", params={"limit": 1000, **params}, headers=auth("admin")).json()
    assert body["next_after"] is None
    return [e["position"] for e in body["events"]]


# ---- the overview ----


@pytest.mark.parametrize("role", ["storefront", "analyst", "admin"])
def test_overview_shows_the_apis_inventory(world: World, role: str) -> None:
    page = signed_in(world, role).get("/ui/")
    assert page.status_code == 200
    api = world.api.get("/v1/inventory", headers=auth(role)).json()["items"]
    assert _stock(page.text) == {i["sku"]: {c: i[c] for c in ("available", "reserved", "delivered")} for i in api}
    assert set(_stock(page.text)) == {"GAME-1", "GIFT-EU"}


def test_sales_chart_marks_the_days_with_sales_per_currency(world: World) -> None:
    page = signed_in(world, "finance").get("/ui/").text
    chart = _section(page, "sales-chart")
    assert chart is not None and '<svg class="chart"' in chart
    rows = world.api.get("/v1/reports/sales", params={"group_by": "day"}, headers=auth("finance")).json()["rows"]
    figures = dict(re.findall(r'<figure class="chart" data-currency="(\w+)">(.*?)</figure>', chart, re.S))
    assert set(figures) == {"USD", "EUR"}  # one chart per currency
    for currency, svg in figures.items():
        days = sorted(r["day"] for r in rows if r["currency"] == currency and r["orders"])
        marked = re.findall(r'<rect class="mark" data-series="sales" data-day="([\d-]+)"', svg)
        assert marked == days
        assert re.findall(r'<rect class="mark" data-series="refunds" data-day="([\d-]+)"', svg) == sorted(
            r["day"] for r in rows if r["currency"] == currency and r["refunds"] != "0.00")
        assert "<title>" in svg and "sales" in svg and "refunds" in svg  # titled, with a legend
    assert len(re.findall(r'class="mark" data-series="sales"', figures["USD"])) == 3  # day 3 had none
    assert len(re.findall(r'class="mark" data-series="sales"', figures["EUR"])) == 1
    margin = _section(page, "margin-chart")
    assert margin is not None and re.search(r'<polyline class="mark" data-series="margin USD"', margin)


def test_panels_refresh_after_a_new_order(world: World) -> None:
    browser = signed_in(world, "storefront")
    page = browser.get("/ui/").text
    assert 'hx-get="/ui/overview/panels"' in page and 'hx-trigger="every 2s"' in page and "hx-swap=" in page
    before = browser.get("/ui/overview/panels")
    assert before.status_code == 200 and "<html" not in before.text  # a fragment
    # the page and the fragment render the same panels
    assert _section(page, "inventory") == _section(before.text, "inventory")
    placed = world.api.post("/v1/orders", json={"customer_id": "erin", "sku": "GAME-1", "quantity": 2},
                            headers=auth("storefront"))
    assert placed.status_code == 201, placed.text
    assert world.svc.wait_for(VIEWS, placed.json()["position"]) is not None
    after = browser.get("/ui/overview/panels")
    old, new = _stock(before.text)["GAME-1"], _stock(after.text)["GAME-1"]
    assert (new["available"], new["reserved"]) == (old["available"] - 2, old["reserved"] + 2)
    api = world.api.get("/v1/inventory/GAME-1", headers=auth("storefront")).json()
    assert new == {c: api[c] for c in ("available", "reserved", "delivered")}


# (role, the overview's panels it sees, whether it may open the event browser)
PANELS = ("inventory", "sales-chart", "margin-chart", "suppliers", "fraud-alerts", "lag")
SEES = [
    ("storefront", {"inventory", "lag"}, False),
    ("finance", {"sales-chart", "margin-chart", "suppliers", "lag"}, True),
    ("analyst", {"inventory", "sales-chart", "margin-chart", "lag"}, True),
    ("risk", {"fraud-alerts", "lag"}, False),
    ("admin", set(PANELS), True),
]


@pytest.mark.parametrize(("role", "panels", "events"), SEES, ids=[s[0] for s in SEES])
def test_each_role_sees_only_its_panels(world: World, role: str, panels: set[str], events: bool) -> None:
    browser = signed_in(world, role)
    for path in ("/ui/", "/ui/overview/panels"):
        html = browser.get(path).text
        assert {p for p in PANELS if _section(html, p) is not None} == panels, path
    html = browser.get("/ui/").text
    assert ('href="/ui/events"' in html) == events
    assert browser.get("/ui/events").status_code == (200 if events else 403)
    assert browser.get("/ui/events/1").status_code == (200 if events else 403)


def test_fraud_and_lag_panels(world: World) -> None:
    html = signed_in(world, "risk").get("/ui/").text
    alerts = _section(html, "fraud-alerts")
    api = world.api.get("/v1/fraud/alerts", headers=auth("risk")).json()["alerts"]
    assert alerts is not None and api
    assert [int(n) for n in re.findall(r'<tr class="alert" data-position="(\d+)"', alerts)] == sorted(
        (a["position"] for a in api), reverse=True)[:10]
    assert IP in alerts and "velocity" in alerts
    assert 'href="/ui/events/' not in alerts  # risk may not open the event browser
    lag = _section(html, "lag")
    assert lag is not None and f'data-col="head">{head(world.svc.ledger)}<' in lag


def test_suppliers_panel_shows_each_float_and_flags_a_low_one(world: World) -> None:
    from ledger import commands as c

    ledger = world.svc.ledger
    ctx = ledger.context("admin")
    ledger.execute(c.SetSupplier(ctx=ctx, name="topup-co", base_url="http://127.0.0.1:9", secret="s" * 20,
                                 currency="USD")).get()
    ledger.execute(c.FundSupplier(ctx=ctx, name="topup-co", amount="50.00", reference="wire-1")).get()
    ledger.execute(c.SetLowFloat(ctx=ctx, name="topup-co", threshold="80.00")).get()
    panel = _section(signed_in(world, "finance").get("/ui/").text, "suppliers")
    assert panel is not None
    row = panel[panel.index('data-supplier="topup-co"'):]
    assert 'data-col="available">50.00' in row and "low float" in row
    assert "s" * 20 not in panel  # never the secret


def test_signed_out_goes_to_sign_in(world: World) -> None:
    browser = TestClient(world.app, raise_server_exceptions=False)
    for path in ("/ui/", "/ui/overview/panels", "/ui/events?after=3", "/ui/events/1"):
        response = browser.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next="), path
    # the page's polling, signed out meanwhile: htmx loads the sign-in page instead of swapping it in
    polled = browser.get("/ui/overview/panels", headers={"HX-Request": "true"}, follow_redirects=False)
    assert polled.status_code == 401 and polled.headers["hx-redirect"].startswith("/ui/login?next=")


# ---- the event browser ----


def test_events_page_across_boundaries(world: World) -> None:
    browser = signed_in(world, "analyst")
    everything = _api_positions(world)
    seen: list[int] = []
    url: str | None = "/ui/events?limit=25"
    pages = []
    while url is not None:
        html = browser.get(url).text
        pages.append((url, _positions(html)))
        seen += pages[-1][1]
        url = _link(html, "next-page")
    assert seen == everything and len(pages) >= 3
    assert all(len(p) == 25 for _, p in pages[:-1])
    # previous goes back to exactly the page before, across each boundary
    for (earlier, positions), (later, _) in itertools.pairwise(pages):
        previous = _link(browser.get(later).text, "previous-page")
        assert previous is not None and _positions(browser.get(previous).text) == positions, (earlier, later)
    assert _link(browser.get(pages[0][0]).text, "previous-page") is None
    # a page starting anywhere: the next events after that position
    assert _positions(browser.get("/ui/events?after=7&limit=3").text) == [p for p in everything if p > 7][:3]
    # the form as submitted with nothing chosen: the first page
    assert _positions(browser.get("/ui/events?type=&aggregate=&after=&limit=").text) == everything[:50]


def test_events_filter_by_type_and_aggregate(world: World) -> None:
    browser = signed_in(world, "finance")
    html = browser.get("/ui/events?type=Order.Placed").text
    assert _positions(html) == _api_positions(world, type="Order.Placed")
    assert set(re.findall(r'data-type="([^"]+)"', html)) == {"Order.Placed"}
    assert '<option value="Order.Placed" selected>' in html
    # one order's events, two at a time, forwards and back
    stream = world.api.get(f"/v1/audit/streams/{world.order_id}", headers=auth("finance")).json()["events"]
    found: list[list[int]] = []
    url: str | None = f"/ui/events?aggregate={world.order_id}&limit=2"
    while url is not None:
        page = browser.get(url).text
        found.append(_positions(page))
        url = _link(page, "next-page")
    flat = [p for chunk in found for p in chunk]
    assert len(flat) == len(stream) >= 4 and flat == sorted(flat)
    assert flat == [p for p in _api_positions(world) if p in set(flat)]
    details = [browser.get(f"/ui/events/{p}").text for p in flat]
    assert all(world.order_id in d for d in details)
    last = browser.get(f"/ui/events?aggregate={world.order_id}&limit=2&after={found[-1][0] - 1}").text
    previous = _link(last, "previous-page")
    assert previous is not None and _positions(browser.get(previous).text) == found[-2]
    # both filters at once; an order link goes to its timeline
    both = browser.get(f"/ui/events?aggregate={world.order_id}&type=Order.KeysDelivered").text
    assert len(_positions(both)) == 1 and f'href="/ui/timeline/order/{world.order_id}"' in both


def test_event_detail(world: World) -> None:
    browser = signed_in(world, "finance")
    (placed,) = _api_positions(world, type="Order.Placed")[1:2]
    html = browser.get(f"/ui/events/{placed}").text
    event = world.api.get("/v1/audit/events", params={"after": placed - 1, "limit": 1},
                          headers=auth("finance")).json()["events"][0]
    meta = event["data"]["meta"]
    for value in (event["type"], event["stream_id"], meta["actor"], meta["correlation_id"], meta["causation_id"]):
        assert value in html
    assert '"customer_id": "bob"' in unescape(html) and '"sku": "GIFT-EU"' in unescape(html)
    assert 'href="/ui/timeline/customer/bob"' in html and 'href="/ui/timeline/sku/GIFT-EU"' in html


@pytest.mark.parametrize("kind", ["Key.Registered", "Key.Delivered", "Order.KeysDelivered", "Batch.Received"])
def test_event_detail_never_shows_a_code(world: World, kind: str) -> None:
    browser = signed_in(world, "admin")
    positions = _api_positions(world, type=kind)
    assert positions
    for position in positions[:5]:
        html = browser.get(f"/ui/events/{position}").text
        assert kind in html
        assert not any(code in html for code in world.codes)
        assert "sealed_code" not in html and "code_hmac" not in html


BAD = [
    ("/ui/events?type=Bogus.Event", 422, "type"),
    ("/ui/events?type=Order.Placed,Nope", 422, "type"),
    ("/ui/events?after=abc", 422, "after"),
    ("/ui/events?after=-1", 422, "after"),
    ("/ui/events?limit=0", 422, "limit"),
    ("/ui/events?limit=100000", 422, "limit"),
    ("/ui/events?aggregate=not-a-uuid", 422, "aggregate"),
    ("/ui/events/abc", 422, "position"),
    ("/ui/events/0", 422, "position"),
    ("/ui/events/99999999", 404, None),
]


@pytest.mark.parametrize(("path", "status", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_page_naming_the_field(world: World, path: str, status: int, field: str | None) -> None:
    response = signed_in(world, "analyst").get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    if field is not None:
        assert f'data-field="{field}"' in response.text


def _crawled(browser: TestClient, start: list[str], codes: list[str]) -> set[str]:
    """Pages of the overview and the event browser reachable from `start`, each checked for codes
    (and for the names of the secret fields); the URLs seen."""
    queue, seen = list(start), set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        response = browser.get(url)
        assert response.status_code in (200, 403), (url, response.status_code)
        html = response.text
        assert not any(code in html for code in codes), url
        assert "sealed_code" not in html and "code_hmac" not in html, url
        for href in re.findall(r'href="(/ui/[^"]*)"', html):
            target = urlsplit(unescape(href))
            if not (target.path == "/ui/" or target.path.startswith(("/ui/overview", "/ui/events"))):
                continue  # not the overview's or the browser's (timelines, finance, risk: tested with them)
            if target.path == "/ui/events" and "after=" in target.query and "aggregate=" not in target.query:
                continue  # the log from some event on: its events are crawled already
            queue.append(unescape(href))
    return seen


def test_no_page_shows_an_imported_code(world: World) -> None:
    """Every event's page, the log, each aggregate's events and the overview (as admin, who may
    open them all); what each other role opens first."""
    seen = _crawled(signed_in(world, "admin"), ["/ui/", "/ui/overview/panels", "/ui/events?limit=200"], world.codes)
    assert {f"/ui/events/{p}" for p in _api_positions(world)} <= seen
    for role in ("storefront", "finance", "analyst", "risk"):
        browser = signed_in(world, role)
        for url in ("/ui/", "/ui/overview/panels", "/ui/events"):
            html = browser.get(url).text
            assert not any(code in html for code in world.codes), (role, url)


# ---- the charts ----


def test_chart_axes_cover_negative_values_and_text_is_escaped() -> None:
    assert ticks(-3.0, 7.0) == [-5.0, 0.0, 5.0, 10.0]
    assert ticks(0.0, 0.0) == [0.0, 0.5, 1.0]
    days = days_between("2026-02-27", "2026-03-02")
    assert days == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    svg = str(chart("<b>&", days, [
        Series("profit", {"2026-02-27": Decimal("-5.00"), "2026-03-02": Decimal("12.50")}),
        Series("<line>", {"2026-02-28": Decimal(1), "2026-03-01": Decimal(2)}, kind="line"),
    ], str))
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "&lt;line&gt;" in svg
    bars = re.findall(r'<rect class="mark" data-series="profit" data-day="([\d-]+)" data-value="([^"]+)" '
                      r'x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
    assert [(d, v) for d, v, _, _ in bars] == [("2026-02-27", "-5.00"), ("2026-03-02", "12.50")]
    (_, _, loss_top, loss_height), (_, _, gain_top, gain_height) = bars
    assert float(gain_top) + float(gain_height) == pytest.approx(float(loss_top))  # both meet at zero
    assert float(gain_height) / float(loss_height) == pytest.approx(2.5, rel=0.02)
    assert len(re.findall(r'<polyline class="mark"', svg)) == 1 and svg.count('class="dot"') == 2
    assert str(chart("empty", [], [], str)).startswith('<svg class="chart"')
