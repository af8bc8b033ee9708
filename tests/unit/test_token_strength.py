"""The strength check of LEDGER_API_TOKENS passes what secret generators make, so a good token
is never refused (the weak ones refused at start: tests/e2e/test_api_tokens.py)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

import pytest

from ledger.config import token_weakness

GENERATORS: dict[str, Callable[[], str]] = {
    "token_urlsafe(24)": lambda: secrets.token_urlsafe(24),
    "token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "token_hex(16)": lambda: secrets.token_hex(16),
    "uuid4().hex": lambda: uuid.uuid4().hex,
    "token_hex(32) in capitals": lambda: secrets.token_hex(32).upper(),
}


@pytest.mark.parametrize("make", GENERATORS.values(), ids=GENERATORS.keys())
def test_random_tokens_pass(make: Callable[[], str]) -> None:
    refused = [(token, why) for token in (make() for _ in range(5000)) if (why := token_weakness(token))]
    assert refused == []
