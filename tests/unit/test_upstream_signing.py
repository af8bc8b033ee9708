"""The simulator's pure parts against docs/upstream.md: its signed examples, its reason codes,
request parsing, rounding, the seeded draws and the log's account mask."""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import Decimal
from pathlib import Path

import pytest

from simulators.behaviour import Behaviour
from simulators.protocol import RETRYABLE, Refused, charge_for, parse_request
from simulators.signing import request_target, signature, verify
from simulators.upstream import mask

DOC = (Path(__file__).resolve().parents[2] / "docs" / "upstream.md").read_text()
SECRET = "example-secret"


def _http_examples() -> list[tuple[str, dict[str, str], bytes]]:
    """(request line, headers, body) of every ```http block of the document."""
    examples = []
    for block in re.findall(r"```http\n(.*?)\n```", DOC, re.S):
        head, _, body = block.partition("\n\n")
        first, *lines = head.split("\n")
        headers = dict(line.split(": ", 1) for line in lines)
        examples.append((first, headers, body.encode()))
    return examples


def test_every_signed_example_of_the_document_verifies() -> None:
    signed = [(first, headers, body) for first, headers, body in _http_examples() if "X-Signature" in headers]
    assert len(signed) == 5
    for first, headers, body in signed:
        method, target, _ = first.split(" ")
        message = body if method == "POST" else target.encode()
        independent = "sha256=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
        assert headers["X-Signature"] == independent == signature(SECRET, message), first
        assert verify(SECRET, message, headers["X-Signature"])
        assert not verify("another-secret", message, headers["X-Signature"])


def test_verify_refuses_what_is_not_the_signature() -> None:
    good = signature("s", b"body")
    assert verify("s", b"body", good) and verify("s", b"body", good.upper())
    assert not verify("s", b"body", None)
    assert not verify("s", b"body", good.removeprefix("sha256="))
    assert not verify("s", b"body ", good)


def test_a_get_signs_its_path_and_query_as_sent() -> None:
    assert request_target(b"/v1/recharges/r-1", b"") == b"/v1/recharges/r-1"
    assert request_target(b"/v1/statement", b"from=2026-03-01") == b"/v1/statement?from=2026-03-01"


def test_the_reason_table_of_the_document_is_the_simulators() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| `(true|false)` \|", DOC, re.M))
    assert {reason: retryable == "true" for reason, retryable in rows.items()} == RETRYABLE


def test_requests_are_parsed_as_the_document_says() -> None:
    body = b'{"request_id":"r-1","product":"p","account":"138","amount":"30","currency":"CNY","extra":1}'
    request = parse_request(body)
    assert (request.amount, request.callback_url) == (Decimal("30"), None)
    assert request.same_order(parse_request(body.replace(b'"30"', b'"30.00"')))
    for bad, reason in [
        (b"not json", "malformed_json"), (b"[1]", "malformed_json"), (b"\xff", "malformed_json"),
        (body.replace(b'"30"', b"30"), "invalid_request"), (body.replace(b'"30"', b'"30.001"'), "invalid_request"),
        (body.replace(b'"30"', b'"0.00"'), "invalid_request"), (body.replace(b'"r-1"', b'"r 1"'), "invalid_request"),
        (body.replace(b'"r-1"', b'"r-1\\n"'), "invalid_request"), (body.replace(b'"CNY"', b'"cny"'), "invalid_request"),
        (body.replace(b'"p",', b'null,'), "invalid_request"),
        (body.replace(b'"extra"', b'"callback_url":"ftp://x","e"'), "invalid_request"),
    ]:
        with pytest.raises(Refused) as refused:
            parse_request(bad)
        assert (refused.value.status, refused.value.reason) == (400, reason), bad


def test_charges_round_half_up_to_the_cent() -> None:
    assert charge_for(Decimal("30.00"), Decimal("0.97")) == Decimal("29.10")
    assert charge_for(Decimal("10.05"), Decimal("0.5")) == Decimal("5.03")  # 5.025 -> 5.03
    assert charge_for(Decimal("0.01"), Decimal("0.5")) == Decimal("0.01")


def test_draws_depend_on_the_seed_and_attempt_not_on_order() -> None:
    one, same, other = Behaviour(seed=1, fail_rate=0.5), Behaviour(seed=1, fail_rate=0.5), Behaviour(seed=2)
    ids = [f"r-{n}" for n in range(200)]
    assert [one.fails(i) for i in ids] == [same.fails(i) for i in reversed(ids)][::-1]
    assert 60 < sum(one.fails(i) for i in ids) < 140
    assert [one.draw("drop", i, 1) for i in ids] != [one.draw("drop", i, 2) for i in ids]
    assert one.supplier_ref("r-1") != other.supplier_ref("r-1")
    assert all(Behaviour(seed=3, drop_rate=1.0).drops(i, 1) for i in ids)
    assert not any(Behaviour(seed=3).drops(i, 1) for i in ids)


def test_the_log_masks_accounts() -> None:
    assert mask("13812345678") == "138****5678"
    assert mask("player") == "p****r"
    assert mask("ab") == "****"
