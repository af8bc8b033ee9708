"""One handler per command: `HANDLERS[type(command)](command, session) -> result`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from ledger import commands as c
from ledger.handlers import catalog, fulfilment, orders, payment_providers, suppliers, supply, validity
from ledger.writer.session import Session

R = TypeVar("R")
Handler = Callable[[Any, Session], Any]  # a command of one type, and what that type answers

HANDLERS: dict[type[c.Command[Any]], Handler] = {
    c.DefineProduct: catalog.define_product,
    c.ChangePrice: catalog.change_price,
    c.RetireProduct: catalog.retire_product,
    c.CreateCoupon: catalog.create_coupon,
    c.CreateFlashSale: catalog.create_flash_sale,
    c.PlaceOrder: orders.place_order,
    c.CapturePayment: orders.capture_payment,
    c.SetPaymentProvider: payment_providers.set_payment_provider,
    c.CancelOrder: orders.cancel_order,
    c.ExpireOrder: orders.expire_order,
    c.RefundOrder: orders.refund_order,
    c.ExpireValidities: validity.expire_validities,
    c.ImportKeys: supply.import_keys,
    c.RecallBatch: supply.recall_batch,
    c.Redeem: supply.redeem,
    c.SetSupplier: suppliers.set_supplier,
    c.FundSupplier: suppliers.fund_supplier,
    c.SetLowFloat: suppliers.set_low_float,
    c.SettleSupplier: suppliers.settle_supplier,
    c.SetOffer: suppliers.set_offer,
    c.RemoveOffer: suppliers.remove_offer,
    c.StartAttempt: fulfilment.start_attempt,
    c.RecordAttempt: fulfilment.record_attempt,
}


def handle(command: c.Command[R], session: Session) -> R:
    answer: R = HANDLERS[type(command)](command, session)
    return answer


# The aggregates a command will read that the writer is unlikely to hold: the writer asks
# the store for all of a batch's at once (one query), not one round trip per command.
READ_AHEAD: dict[type[c.Command[Any]], Callable[[Any], list[UUID]]] = {
    c.PlaceOrder: orders.holder_ids,
}


def read_ahead(command: c.Command[Any]) -> list[UUID]:
    wanted = READ_AHEAD.get(type(command))
    return wanted(command) if wanted is not None else []
