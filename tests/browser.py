"""The web UI in a real browser: a `ledger serve` over a small demo history, and headless Chromium
(Debian's `chromium` and `chromium-driver`, which `scripts/test` installs) driven by Selenium.

Selenium is handed the driver's and the browser's paths, so its selenium-manager never runs and
nothing is downloaded; the fixture makes sure of it. One server and one browser per module."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import httpx
import pytest

from tests.demo_history import seeded
from tests.served import Served, auth, serve_env

if TYPE_CHECKING:  # selenium loads only when a browser test runs
    from selenium.webdriver.remote.webdriver import WebDriver

UI_ORDERS = 30  # the small demo: a few hundred events, well under a second to make
PROBE_SKU = "UI-PROBE"  # a product the fixture adds through the API, with codes it knows
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"  # the README shows them
WINDOW = (1280, 900)


def api_get(api: httpx.Client, role: str, path: str, **params: Any) -> Any:
    response = api.get(path, headers=auth(role), params=params)
    assert response.status_code == 200, f"GET {path} as {role}: {response.status_code} {response.text}"
    return response.json()


def api_post(api: httpx.Client, role: str, path: str, body: dict[str, Any]) -> Any:
    response = api.post(path, headers=auth(role), json=body)
    assert response.status_code in (200, 201), f"POST {path} as {role}: {response.status_code} {response.text}"
    return response.json()


@dataclass
class UiSite:
    """A served ledger holding the demo's history plus one probe order, and what the API says of it."""

    served: Served
    api: httpx.Client
    demo_order: str  # an order the demo delivered
    probe_order: str  # an order for PROBE_SKU, delivered through the API
    probe_batch: str
    probe_keys: list[str]
    probe_position: int  # the position the probe batch's import returned
    codes: list[str] = field(repr=False)  # no page may show them: the probe batch's, the demo order's

    @property
    def base_url(self) -> str:
        return self.served.base_url

    def get(self, role: str, path: str, **params: Any) -> Any:
        return api_get(self.api, role, path, **params)

    def positions_of(self, stream_id: str) -> list[int]:
        """The log positions of one aggregate's events, from the API's audit feed."""
        found: list[int] = []
        after: int | None = 0
        while after is not None:
            page = self.get("finance", "/v1/audit/events", after=after, limit=1000)
            found += [e["position"] for e in page["events"] if e["stream_id"] == stream_id]
            after = page["next_after"]
        return found


def _probe(served: Served, api: httpx.Client) -> UiSite:
    """A product with known codes imported through the API, one of them sold and delivered; and
    the codes the demo delivered on one of its orders. Then wait until the read models hold it all."""
    delivered = api_get(api, "finance", "/v1/audit/events", type="Order.KeysDelivered", limit=1)["events"]
    assert delivered, "the demo delivered no order"
    demo_order = delivered[0]["stream_id"]
    demo_codes = [k["code"] for k in api_get(api, "storefront", f"/v1/orders/{demo_order}/keys")["keys"]]
    assert demo_codes, f"the demo's order {demo_order} has no delivered codes"

    probe_codes = [f"UIPROBE-{uuid.uuid4().hex[:16].upper()}" for _ in range(3)]
    api_post(api, "admin", "/v1/products", {"sku": PROBE_SKU, "name": "UI probe key", "face_value": "10.00",
                                            "currency": "USD", "price": "9.00"})
    batch = api_post(api, "admin", f"/v1/products/{PROBE_SKU}/batches",
                     {"supplier": "ui-probe", "unit_cost": "5.00", "codes": probe_codes})
    order = api_post(api, "storefront", "/v1/orders", {"customer_id": "ui-probe", "sku": PROBE_SKU, "quantity": 1})
    paid = api_post(api, "payments", f"/v1/orders/{order['order_id']}/payments",
                    {"payment_reference": "ui-probe-1", "amount": order["amount_due"], "provider": "cardpay"})
    assert paid["key_ids"], paid
    shown = {k["code"] for k in api_get(api, "storefront", f"/v1/orders/{order['order_id']}/keys")["keys"]}
    assert shown and shown <= set(probe_codes), "the API does not return the probe's codes: the probe proves nothing"
    api_get(api, "admin", "/v1/projections", min_position=paid["position"])  # every read model has it all
    return UiSite(served, api, demo_order=demo_order, probe_order=order["order_id"], probe_batch=batch["batch_id"],
                  probe_keys=[str(k) for k in paid["key_ids"]], probe_position=batch["position"],
                  codes=probe_codes + demo_codes)


@pytest.fixture(scope="module")
def ui_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiSite]:
    data_dir = tmp_path_factory.mktemp("ui-site")
    url = f"sqlite:///{data_dir / 'ledger.sqlite'}"
    seeded(url, data_dir, orders=UI_ORDERS).close()
    served = Served(serve_env(url, data_dir, pool_size=2), data_dir / "serve.log")
    try:
        served.start()
        with httpx.Client(base_url=served.base_url, timeout=30) as api:
            yield _probe(served, api)
    finally:
        served.stop()


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "the browser tests need Debian's chromium and chromium-driver (scripts/test installs them as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Browser:
    """One headless Chromium for a module; every page it opened is kept for the no-codes check."""

    driver: WebDriver
    base_url: str
    pages: dict[str, str] = field(default_factory=dict, repr=False)  # "role path" -> the HTML it had

    def open(self, path: str) -> str:
        self.driver.get(self.base_url + path)
        self.settled()
        html: str = self.driver.page_source
        self.pages[f"{self.role()} {path}"] = html
        return html

    def settled(self, timeout: float = 10) -> None:
        """Loaded, and no htmx request of its panels still under way."""
        from selenium.webdriver.support.wait import WebDriverWait

        WebDriverWait(self.driver, timeout).until(lambda driver: driver.execute_script(
            "return document.readyState === 'complete' && !document.querySelector('.htmx-request')"))

    def wait_for(self, script: str, timeout: float = 5) -> Any:
        """What `script` returns once it is truthy (a panel htmx fills after load), else its last answer."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.wait import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout).until(lambda driver: driver.execute_script(script))
        except TimeoutException:
            return self.driver.execute_script(script)

    def role(self) -> str:
        found = self.driver.find_elements("css selector", "header form.who span")
        return found[0].text if found else "-"

    def sign_in(self, token: str, path: str = "/ui/") -> None:
        """Through the sign-in form, as a person would: fill #token, click #sign-in."""
        from selenium.webdriver.support.wait import WebDriverWait

        self.driver.delete_all_cookies()
        self.driver.get(self.base_url + path)  # no cookie: redirected to the sign-in page
        form = self.driver.find_element("id", "token")
        form.send_keys(token)
        self.driver.find_element("id", "sign-in").click()
        # Chromedriver may answer "does not belong to the document" instead of "stale" while the
        # next page replaces the form: both mean the form is gone.
        WebDriverWait(self.driver, 10).until(_gone(form))

    def screenshot(self, name: str) -> Path:
        """The whole page as docs/screenshots/<name>.png (overwritten on each run)."""
        self.settled()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target = SCREENSHOTS / f"{name}.png"
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(WINDOW[0], max(WINDOW[1], min(int(height), 3000)))
        try:
            assert self.driver.save_screenshot(str(target)), f"no screenshot written to {target}"
        finally:
            self.driver.set_window_size(*WINDOW)
        return target


@pytest.fixture(scope="module")
def browser(ui_site: UiSite) -> Iterator[Browser]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    chromium, chromedriver = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-extensions", "--lang=en-US"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run its sandbox as root
    # Both paths are given, so selenium-manager (which may download a browser and a driver) must
    # not run at all: offline it could not, and should it be called anyway the test fails.
    refused = AssertionError("selenium-manager was called: the browser tests never download a browser")
    with mock.patch.dict(os.environ, {"SE_OFFLINE": "true"}), \
            mock.patch.object(SeleniumManager, "binary_paths", side_effect=refused):
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        assert driver.service.path == chromedriver, driver.service.path
        driver.set_page_load_timeout(30)
        yield Browser(driver, ui_site.base_url)
    finally:
        driver.quit()


def _gone(element: Any) -> Any:
    """A wait condition: `element` left the document (the page it was on was replaced)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def check(_driver: Any) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            return "does not belong to the document" in str(error)
        return False

    return check
