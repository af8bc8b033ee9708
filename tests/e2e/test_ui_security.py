"""The UI against another site's page and a snooping network: a sign-in posted from elsewhere
(login CSRF: the visitor signed in under the attacker's token) is refused, every UI page forbids
framing and any script or style but the server's own, no response is sniffed into another type,
and the cookies are `Secure` unless LEDGER_UI_SECURE_COOKIE says the UI is served over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.security_headers import CONTENT_SECURITY_POLICY
from api.services import Services
from api.ui.auth import COOKIE
from api.ui.session import CSRF_COOKIE
from tests.api_fixtures import TOKENS, auth, open_services, ui_sign_in


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Services]:
    """The default setting: cookies `Secure` (the client below speaks https://testserver)."""
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, ui_secure_cookie=True)
    yield services
    services.close()


@pytest.fixture
def browser(secure: Services) -> Iterator[TestClient]:
    with TestClient(create_app(secure), base_url="https://testserver") as client:
        yield client


def test_a_sign_in_posted_from_another_site_is_refused(browser: TestClient) -> None:
    """The attacker's page posts its own token to /ui/login: without the visitor's CSRF cookie and
    the matching field (which only the sign-in page itself has) nobody is signed in."""
    forged = browser.post("/ui/login", data={"token": TOKENS["storefront"], "next": "/ui/"}, follow_redirects=False)
    assert forged.status_code == 403
    assert COOKIE not in forged.cookies and "sign in again" in forged.text
    browser.get("/ui/login")  # the visitor has a CSRF cookie; the attacker still does not know its value
    guessed = browser.post("/ui/login", data={"token": TOKENS["storefront"], "csrf": "A" * 43},
                           follow_redirects=False)
    assert guessed.status_code == 403 and COOKIE not in guessed.cookies
    assert browser.get("/ui/", follow_redirects=False).status_code == 303  # still signed out


def test_the_sign_in_page_signs_in_with_its_csrf_token(browser: TestClient) -> None:
    form = browser.get("/ui/login")
    assert re.search(r'<input type="hidden" name="csrf" value="[A-Za-z0-9_-]{43}">', form.text)
    signed = ui_sign_in(browser, TOKENS["finance"], follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
    assert browser.get("/ui/finance").status_code == 200


def test_cookies_are_secure_httponly_and_strict_by_default(browser: TestClient) -> None:
    form = browser.get("/ui/login")
    signed = ui_sign_in(browser, TOKENS["finance"], follow_redirects=False)
    for response, name in ((form, CSRF_COOKIE), (signed, COOKIE)):
        (cookie,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/ui"} <= attributes, cookie


def test_secure_is_off_only_when_the_setting_says_so(tmp_path: Path) -> None:
    services = open_services(f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path, ui_secure_cookie=False)
    try:
        with TestClient(create_app(services)) as client:
            signed = ui_sign_in(client, TOKENS["finance"], follow_redirects=False)
            cookie = signed.headers["set-cookie"].lower()
            assert signed.status_code == 303 and "httponly" in cookie and "secure" not in cookie
    finally:
        services.close()


@pytest.mark.parametrize("path", ["/ui/login", "/ui/", "/ui/finance", "/ui/events", "/ui/no-such-page",
                                  "/ui/static/htmx.min.js"])
def test_every_ui_answer_forbids_framing_and_foreign_scripts(browser: TestClient, path: str) -> None:
    ui_sign_in(browser, TOKENS["admin"])
    response = browser.get(path, follow_redirects=False)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_script_or_style_the_policy_would_block(browser: TestClient) -> None:
    ui_sign_in(browser, TOKENS["admin"])
    for path in ("/ui/login", "/ui/", "/ui/finance", "/ui/risk", "/ui/events"):
        html = browser.get(path).text
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), path
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=|hx-on", html), path


def test_the_api_is_never_sniffed(browser: TestClient) -> None:
    for response in (browser.get("/healthz"), browser.get("/v1/inventory", headers=auth("storefront")),
                     browser.get("/v1/inventory")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in response.headers  # /docs loads Swagger UI from its CDN
