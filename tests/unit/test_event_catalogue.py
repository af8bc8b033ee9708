from pathlib import Path

from ledger.encoding.event_catalogue import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_docs_events_md_matches_the_code() -> None:
    """Regenerate with `python scripts/gen_events_doc.py` when this fails."""
    assert DOC.read_text() == render()


def test_catalogue_names_every_fact_the_ledger_promises() -> None:
    text = render()
    for event in (
        "Product.Defined", "Product.PriceChanged", "Product.Retired", "Batch.Received", "Batch.Recalled",
        "Key.Registered", "Key.Delivered", "Key.Redeemed", "Key.Revoked", "Key.Voided", "Stock.Reserved",
        "Stock.Released", "Order.Placed", "Order.Rejected", "Order.KeysReserved", "Order.PaymentCaptured",
        "Order.KeysDelivered", "Order.Expired", "Order.Cancelled", "Order.Refunded", "Coupon.Used",
        "Coupon.UseReleased", "FlashSale.Claimed", "FlashSale.ClaimReleased", "Order.RecipientGiven",
        "Order.FulfilmentStarted", "Order.Fulfilled", "Order.FulfilmentReversed", "Order.Granted",
        "Fulfilment.Requested", "Fulfilment.AttemptStarted", "Fulfilment.AttemptSucceeded", "Fulfilment.GaveUp",
        "Supplier.Registered", "Supplier.FloatFunded", "Supplier.Charged", "Supplier.ChargeReversed",
    ):
        assert f"`{event}`" in text, event
    assert "sealed_code" in text and "`code`: " not in text.split("## Key")[1].split("## Stock")[0]
    # On Kafka a recipient account travels masked only, a supplier's secret not at all.
    kafka = text.split("## On Kafka")[1]
    assert "`ledger.Order.RecipientGiven` | `account_masked`: string |" in kafka
    assert "secret_sealed" not in kafka and "account_hmac" not in kafka


def test_every_declared_event_says_what_it_means() -> None:
    """An event without a docstring would show an empty meaning in the catalogue."""
    from ledger.encoding.event_catalogue import _doc, aggregates, declared_events

    undocumented = [f"{a.__name__}.{e.__name__}" for a in aggregates() for e in declared_events(a) if not _doc(e)]
    assert undocumented == []
