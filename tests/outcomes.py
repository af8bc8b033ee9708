"""What a generated history did, counted from its own events, so that a property test can show
that its histories sold, refunded, expired and exhausted things rather than being refused
throughout (a test that swallows every refusal would otherwise pass on a history where nothing
could be sold)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ledger.domain.fulfilment import Fulfilment, Grant
from ledger.domain.orders import Order
from ledger.domain.supply import Batch, Key
from ledger.service.ledger import Ledger
from tests.helpers import all_events


def outcomes(ledger: Ledger) -> Counter[str]:
    """Counts of what the ledger's history holds: deliveries, refunds asked for ("refunded") and
    given back on their own for a payment with no goods ("auto-refunded"), expiries,
    cancellations, redemptions, revocations, recalls, recharges delivered by a supplier ("fulfilled"),
    given up, and reversed by their supplier, access granted, keys, access and grants ended past
    their validity, and each rejection by its reason."""
    seen: Counter[str] = Counter()
    for event in all_events(ledger):
        if isinstance(event, Order.KeysDelivered):
            seen["delivered"] += 1
        elif isinstance(event, Order.Refunded):
            seen["auto-refunded" if event.automatic else "refunded"] += 1
        elif isinstance(event, Order.Expired):
            seen["expired"] += 1
        elif isinstance(event, Order.Cancelled):
            seen["cancelled"] += 1
        elif isinstance(event, Order.Rejected):
            seen[event.reason] += 1  # e.g. "coupon-exhausted", "out-of-stock"
        elif isinstance(event, Key.Redeemed):
            seen["redeemed"] += 1
        elif isinstance(event, Key.Revoked):
            seen["revoked"] += 1
        elif isinstance(event, Batch.Recalled):
            seen["recalled"] += 1
        elif isinstance(event, Order.Fulfilled):
            seen["fulfilled"] += 1
        elif isinstance(event, Fulfilment.GaveUp):
            seen["gave-up"] += 1
        elif isinstance(event, Order.FulfilmentReversed):
            seen["fulfilment-reversed"] += 1
        elif isinstance(event, Order.Granted):
            seen["granted"] += 1
        elif isinstance(event, Key.Expired):
            seen["key-expired"] += 1
        elif isinstance(event, Order.AccessEnded):
            seen["access-ended"] += 1
        elif isinstance(event, Grant.Ended):
            seen["grant-ended"] += 1
    return seen


def assert_explored(seen: Counter[str], at_least: Mapping[str, int], examples: int) -> None:
    """Over a whole run, the generated histories reached each outcome at least so many times."""
    short = {what: f"{seen[what]} < {n}" for what, n in at_least.items() if seen[what] < n}
    assert not short, f"over {examples} generated histories too few of {short} happened; all: {dict(seen)}"
