"""Purchase workers for tests/service/test_concurrency_pg.py: importable by 'spawn' child processes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from ledger.config import Settings
from ledger.domain.errors import Contention, DomainError
from ledger.service.ledger import Ledger, open_ledger

TEST_CIPHER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # the same key as tests/conftest.py

PAYMENT_REDELIVERIES = 5

# (attempt, outcome, key ids): outcome is "delivered", a DomainError class name, or "UNEXPECTED <repr>".
Result = tuple[int, str, list[UUID]]


def buy(ledger: Ledger, sku: str, attempt: int) -> Result:
    """Place an order for one key and pay for it; a distinct customer per attempt.

    A payment callback that meets Contention is sent again, as a provider redelivers it
    (capture is idempotent by reference); each redelivery is reported as "pay-retry".
    """
    retries = 0
    try:
        placed = ledger.place_order(
            ledger.context("storefront"), customer_id=f"racer-{attempt}", sku=sku, quantity=1
        )
        while True:
            try:
                paid = ledger.capture_payment(
                    ledger.context("psp"), placed.order_id, payment_reference=f"race-pay-{attempt}",
                    amount=placed.amount_due, provider="psp",
                )
                break
            except Contention:
                retries += 1
                if retries == PAYMENT_REDELIVERIES:
                    raise
        return attempt, paid.outcome + ("+pay-retry" * min(retries, 1)), list(paid.key_ids)
    except DomainError as error:
        return attempt, type(error).__name__ + ("+pay-retry" * min(retries, 1)), []
    except Exception as error:  # reported, never swallowed: the test fails on these
        return attempt, f"UNEXPECTED {error!r}", []


def buy_many(ledger: Ledger, sku: str, attempts: list[int], start: Any = None) -> list[Result]:
    if start is not None:
        start.wait()
    return [buy(ledger, sku, attempt) for attempt in attempts]


def process_main(
    url: str, sku: str, attempts: list[int], settings: dict[str, Any], opening: Any, start: Any, results: Any
) -> None:
    """Entry point of one spawned process: its own ledger on the shared database and a real clock.

    All processes open their ledgers at once (the library's CREATE TABLE IF NOT EXISTS races are
    retried by `build_app`); `opening` is unused, kept for the call's shape. `start` is a barrier
    (all processes open first, then race); results go on `results` as one list.
    """
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            ledger = open_ledger(
                Settings(database_url=url, data_dir=Path(data_dir), cipher_key=TEST_CIPHER_KEY, **settings)
            )
            try:
                ledger.reads.stock(sku)  # connect and warm the cache before the race
                start.wait(timeout=60)
                results.put(buy_many(ledger, sku, attempts))
            finally:
                ledger.close()
    except BaseException as error:
        results.put([(-1, f"UNEXPECTED {error!r}", [])])
        raise
