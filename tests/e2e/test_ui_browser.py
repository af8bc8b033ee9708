"""The web UI in a real headless Chromium against a real `ledger serve` after a small demo:
signing in with a token, the overview's chart and stock (equal to the API's), an order's
timeline in log order, a storefront token kept out of finance, and no card-key code on any page.
The run writes docs/screenshots/overview.png and timeline.png (the README shows them)."""

from __future__ import annotations

import httpx

from api.ui.auth import COOKIE
from tests.browser import PROBE_SKU, Browser, UiSite, api_post
from tests.served import TOKENS

STOCK = """
const shown = {};
for (const row of document.querySelectorAll('tr[data-sku]')) {
    shown[row.dataset.sku] = {};
    for (const col of ['available', 'reserved', 'delivered']) {
        shown[row.dataset.sku][col] = row.querySelector(`td[data-col="${col}"]`).textContent.trim();
    }
}
return shown;
"""  # in one script: a panel htmx refreshes meanwhile cannot leave stale elements behind
MARKS = """
return Array.from(document.querySelectorAll('#sales-chart svg.chart .mark')).map(m => {
    const box = m.getBBox();
    return [m.tagName, box.width, box.height];
});
"""


def test_signing_in_with_a_token(ui_site: UiSite, browser: Browser) -> None:
    driver = browser.driver
    driver.delete_all_cookies()
    driver.get(ui_site.base_url + "/ui/")
    assert "/ui/login" in driver.current_url, "without a token the UI sends you to sign in"

    browser.sign_in("not-a-token")
    assert "/ui/login" in driver.current_url
    assert driver.find_element("css selector", "[role=alert]").is_displayed()

    browser.sign_in(TOKENS["storefront"])
    assert driver.current_url.rstrip("/").endswith("/ui"), driver.current_url
    assert browser.role() == "storefront"
    assert TOKENS["storefront"] not in driver.page_source, "the page shows the token itself"


def test_overview_stock_equals_the_api(ui_site: UiSite, browser: Browser) -> None:
    browser.sign_in(TOKENS["storefront"])
    browser.open("/ui/")
    shown = {sku: {col: int(text) for col, text in cells.items()}
             for sku, cells in browser.driver.execute_script(STOCK).items()}
    api = {item["sku"]: {col: item[col] for col in ("available", "reserved", "delivered")}
           for item in ui_site.get("storefront", "/v1/inventory")["items"]}
    assert PROBE_SKU in api and len(api) > 1
    assert shown == api


def test_overview_draws_the_sales_chart(ui_site: UiSite, browser: Browser) -> None:
    browser.sign_in(TOKENS["admin"])  # admin sees every panel: the screenshot shows them all
    browser.open("/ui/")
    marks = browser.wait_for(MARKS)
    browser.screenshot("overview")
    assert marks, "no #sales-chart svg.chart .mark on the overview"
    assert any(width > 0 or height > 0 for _, width, height in marks), f"every mark is empty: {marks}"


def test_an_orders_timeline_lists_its_events_in_order(ui_site: UiSite, browser: Browser) -> None:
    browser.sign_in(TOKENS["finance"])
    browser.open(f"/ui/timeline/order/{ui_site.demo_order}")
    rows = browser.driver.find_elements("css selector", "tr.event[data-position]")
    assert rows, f"no events on the timeline of order {ui_site.demo_order}"
    browser.screenshot("timeline")
    positions = [int(row.get_attribute("data-position") or "") for row in rows]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    own = ui_site.positions_of(ui_site.demo_order)
    assert own and set(own) <= set(positions), f"the order's own events {own} are not all on its timeline"


def test_a_storefront_token_cannot_open_finance(ui_site: UiSite, browser: Browser) -> None:
    browser.sign_in(TOKENS["storefront"])
    nav = [a.get_attribute("href") or "" for a in browser.driver.find_elements("css selector", "header nav a")]
    assert not any(href.endswith("/ui/finance") for href in nav), nav
    html = browser.open("/ui/finance")
    assert browser.driver.title.startswith("Not for this role"), f"not the 403 page: {html[:300]}"
    answer = httpx.get(f"{ui_site.base_url}/ui/finance", cookies={COOKIE: TOKENS["storefront"]})
    assert answer.status_code == 403
    finance = httpx.get(f"{ui_site.base_url}/ui/finance", cookies={COOKIE: TOKENS["finance"]})
    assert finance.status_code == 200, "finance itself may open it"


def test_no_page_shows_a_code(ui_site: UiSite, browser: Browser) -> None:
    """Every page this module opened, and every page that shows the probe's or the demo order's
    keys, as admin (who sees everything)."""
    browser.sign_in(TOKENS["admin"])
    pages = [
        "/ui/", "/ui/finance", "/ui/risk", "/ui/events", "/ui/events?type=Batch.Received",
        f"/ui/timeline/order/{ui_site.demo_order}", f"/ui/timeline/order/{ui_site.probe_order}",
        f"/ui/timeline/batch/{ui_site.probe_batch}", f"/ui/timeline/sku/{PROBE_SKU}",
        "/ui/timeline/customer/ui-probe",
        *(f"/ui/timeline/key/{key}" for key in ui_site.probe_keys),
        *(f"/ui/events/{p}" for p in range(max(1, ui_site.probe_position - 4), ui_site.probe_position + 1)),
    ]
    for path in pages:
        browser.open(path)
    assert len(browser.pages) >= len(pages)
    # Which pages, never which codes: a failure must not print a secret.
    leaking = [page for page, html in browser.pages.items() if any(c.lower() in html.lower() for c in ui_site.codes)]
    assert not leaking, f"pages showing a card-key code: {leaking}"


def test_the_overview_follows_a_sale_without_a_reload(ui_site: UiSite, browser: Browser) -> None:
    """During a flash sale the merchant keeps the overview open: its panels refresh themselves."""
    browser.sign_in(TOKENS["storefront"])
    browser.open("/ui/")
    driver = browser.driver
    driver.execute_script("window.stayedOnThisPage = true;")  # gone if the page were loaded again
    before = {col: int(text) for col, text in driver.execute_script(STOCK)[PROBE_SKU].items()}
    assert before["available"] >= 1, before
    api_post(ui_site.api, "storefront", "/v1/orders", {"customer_id": "ui-refresh", "sku": PROBE_SKU, "quantity": 1})
    want = {**before, "available": before["available"] - 1, "reserved": before["reserved"] + 1}
    seen = browser.wait_for(STOCK.replace("return shown;", "") + f"""
        const now = shown[{PROBE_SKU!r}];
        return now && Number(now.available) === {want['available']} && Number(now.reserved) === {want['reserved']}
            ? now : null;""", timeout=15)
    assert seen, f"the stock panel still shows {driver.execute_script(STOCK)[PROBE_SKU]}, want {want}"
    assert driver.execute_script("return window.stayedOnThisPage === true"), "the page was reloaded"


HEADERS = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], {credentials: 'same-origin'}).then(r => done({
    csp: r.headers.get('content-security-policy'), frame: r.headers.get('x-frame-options'),
    nosniff: r.headers.get('x-content-type-options')}));
"""
INLINE_SCRIPT = """
const script = document.createElement('script');
script.textContent = 'window.inlineRan = true;';
document.body.appendChild(script);
return window.inlineRan === true;
"""
FRAMED = """
const done = arguments[arguments.length - 1];
const frame = document.createElement('iframe');
frame.onload = () => {
    let shown = false;  // blocked: the frame holds the browser's error page, which the UI cannot read
    try { shown = frame.contentDocument !== null && frame.contentDocument.querySelector('header .brand') !== null; }
    catch (error) { shown = false; }
    done(shown);
};
frame.src = '/ui/';
document.body.appendChild(frame);
"""


def test_signing_in_carries_the_csrf_token_and_the_pages_keep_the_policy(ui_site: UiSite, browser: Browser) -> None:
    """The form has its CSRF field and the browser signs in with it (a post without it is refused:
    tests/e2e/test_ui_security.py); the page's answers carry the policy, and Chromium enforces it:
    an injected inline script does not run and the UI does not show inside a frame, even its own."""
    driver = browser.driver
    driver.delete_all_cookies()
    driver.get(ui_site.base_url + "/ui/login")
    csrf = driver.find_element("css selector", "form input[name=csrf]").get_attribute("value") or ""
    assert len(csrf) == 43, "no CSRF token in the sign-in form"
    assert "ledger_ui_csrf" not in driver.execute_script("return document.cookie"), "the CSRF cookie is HttpOnly"
    browser.sign_in(TOKENS["finance"], path="/ui/finance")
    assert browser.role() == "finance"
    cookies = {c["name"]: c for c in driver.get_cookies()}
    assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["secure"] and cookies[COOKIE]["sameSite"] == "Strict"

    for path in ("/ui/finance", "/ui/login", "/ui/static/ui.css"):
        headers = driver.execute_async_script(HEADERS, path)
        assert "frame-ancestors 'none'" in headers["csp"] and "script-src 'self'" in headers["csp"], (path, headers)
        assert headers["frame"] == "DENY" and headers["nosniff"] == "nosniff", (path, headers)
    assert driver.execute_script(INLINE_SCRIPT) is False, "an inline script ran despite the policy"
    assert driver.execute_async_script(FRAMED) is False, "the UI showed inside a frame"
