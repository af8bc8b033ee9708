"""Upstream fulfilment: starting it at payment, choosing each attempt's route, and recording
what suppliers answer. One function per command; the worker that calls suppliers is
`ledger.fulfilment`.

Routing: the cheapest offer first (then priority, then name), skipping suppliers that already
failed this fulfilment, suppliers whose breaker is open (while another route remains), and
suppliers whose float cannot cover the cost. With none left for good (every offer failed, or
a failure no supplier can get past, or the deadline passed with nothing outstanding) the
fulfilment gives up and the order is refunded in the same transaction.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from ledger.commands import RecordAttempt, StartAttempt
from ledger.domain.catalog import Offer, Product, ProductKind
from ledger.domain.context import Context
from ledger.domain.errors import (
    AttemptConflict,
    InvalidInput,
    UnknownFulfilment,
    UnknownOrder,
    UnknownProduct,
    UnknownSupplier,
)
from ledger.domain.fulfilment import Fulfilment, FulfilmentStatus, Grant, OpenFulfilments
from ledger.domain.ids import OPEN_FULFILMENTS_ID, grant_id, product_id, supplier_id
from ledger.domain.money import parse_amount
from ledger.domain.orders import Order, OrderStatus
from ledger.domain.suppliers import Supplier
from ledger.domain.validity import DueKind
from ledger.handlers.validity import schedule
from ledger.results import AttemptPlan, FulfilmentState
from ledger.writer.session import Session

OUTCOMES = ("pending", "succeeded", "failed", "reversed", "unknown", "resent")


def open_fulfilments(uow: Session, ctx: Context) -> OpenFulfilments:
    found = uow.find(OpenFulfilments, OPEN_FULFILMENTS_ID)
    if found is None:
        found = OpenFulfilments.open(ctx)
        uow.add(found)
    return found


def start_fulfilment(uow: Session, ctx: Context, order: Order, product: Product) -> Fulfilment:
    """The paid order goes to its upstream fulfilment (in the payment's transaction)."""
    assert order.recipient is not None, "an upstream order names its recipient when placed"
    fulfilment = Fulfilment.request(
        ctx, order.id, sku=order.sku, kind=product.kind.value, quantity=order.quantity,
        amount=product.face_value * order.quantity, currency=product.currency,
        account_sealed=order.recipient["sealed"], account_hmac=order.recipient["hmac"],
        account_masked=order.recipient["masked"],
        deadline=ctx.now + timedelta(seconds=product.fulfilment_deadline_s), on_reversal=product.on_reversal,
    )
    order.start_fulfilment(ctx, fulfilment.id)
    open_fulfilments(uow, ctx).add(ctx, fulfilment.id)
    uow.add(fulfilment)
    if uow.route_at_payment is not None:  # a worker beside this writer sends it the moment this commits
        route, _ = _route(uow, fulfilment, _untried(fulfilment, product), set(uow.route_at_payment()))
        if route is not None:  # else the worker's StartAttempt waits or gives up, as for any other
            _start(ctx, fulfilment, *route)
    return fulfilment


def load_fulfilment(uow: Session, fulfilment_id: object) -> Fulfilment:
    return uow.load(Fulfilment, fulfilment_id,  # type: ignore[arg-type]
                    UnknownFulfilment(f"no fulfilment {fulfilment_id}", fulfilment_id=str(fulfilment_id)))


def _order(uow: Session, fulfilment: Fulfilment) -> Order:
    return uow.load(Order, fulfilment.order_id, UnknownOrder(f"no order {fulfilment.order_id}"))


def _plan(fulfilment: Fulfilment, attempt_id: str, resolve: bool) -> AttemptPlan:
    attempt = fulfilment.attempts[attempt_id]
    return AttemptPlan(fulfilment.id, attempt_id, attempt["supplier"], attempt["supplier_product"],
                       fulfilment.amount, fulfilment.currency, fulfilment.account_sealed, resolve, 0)


def _state(fulfilment: Fulfilment, changed: bool, waiting: str | None = None) -> FulfilmentState:
    return FulfilmentState(fulfilment.id, fulfilment.status.value, changed, 0, waiting)


# ---- choosing the next attempt ----


def start_attempt(cmd: StartAttempt, uow: Session) -> AttemptPlan | FulfilmentState:
    ctx = cmd.ctx
    fulfilment = load_fulfilment(uow, cmd.fulfilment_id)
    if fulfilment.current is not None:  # outstanding: asked about before anything else is tried
        return _plan(fulfilment, fulfilment.current, resolve=True)
    if fulfilment.status is not FulfilmentStatus.REQUESTED:
        return _state(fulfilment, changed=False)
    if fulfilment.permanent_failure:
        return _give_up(uow, ctx, fulfilment, fulfilment.permanent_failure)
    if ctx.now >= fulfilment.deadline:
        return _give_up(uow, ctx, fulfilment, "deadline_passed")
    product = uow.load(Product, product_id(fulfilment.sku), UnknownProduct(f"no product {fulfilment.sku}"))
    untried = _untried(fulfilment, product)
    if not untried:
        return _give_up(uow, ctx, fulfilment, "every_route_failed" if product.offers else "no_route")
    route, waiting = _route(uow, fulfilment, untried, set(cmd.unhealthy))
    if route is None:
        return _state(fulfilment, changed=False, waiting=waiting)
    return _plan(fulfilment, _start(ctx, fulfilment, *route), resolve=False)


def _untried(fulfilment: Fulfilment, product: Product) -> dict[str, Offer]:
    """The product's offers whose suppliers have not failed this fulfilment."""
    return {name: offer for name, offer in product.offers.items() if name not in fulfilment.failed_suppliers}


def _start(ctx: Context, fulfilment: Fulfilment, supplier: Supplier, offer: Offer) -> str:
    """A new attempt on this route, recorded before it is sent, its cost held on the supplier's float."""
    cost = offer["cost"] * fulfilment.quantity
    attempt_id = fulfilment.start_attempt(ctx, supplier.name, offer["supplier_product"], cost)
    supplier.hold(ctx, attempt_id, cost)
    return attempt_id


def _route(uow: Session, fulfilment: Fulfilment, offers: dict[str, Offer],
           unhealthy: set[str]) -> tuple[tuple[Supplier, Offer] | None, str]:
    """The best route: cheapest, then by priority and name, among suppliers whose breaker is
    closed (the worker lets a probe through by leaving a supplier out of `unhealthy`) and whose
    float covers the cost; else None and why it waits."""
    ranked = sorted(offers.items(), key=lambda item: (item[1]["cost"], item[1]["priority"], item[0]))
    short = []
    for name, offer in ranked:
        supplier = uow.find(Supplier, supplier_id(name))
        if name in unhealthy or supplier is None:
            continue
        if supplier.available < offer["cost"] * fulfilment.quantity:
            short.append(name)
            continue
        return (supplier, offer), ""
    if short:
        return None, f"float too low at {', '.join(short)}"
    return None, f"breaker open at {', '.join(sorted(unhealthy & offers.keys()))}"


def _give_up(uow: Session, ctx: Context, fulfilment: Fulfilment, reason: str) -> FulfilmentState:
    """No attempt can succeed any more: the order's money goes back, in this transaction."""
    fulfilment.give_up(ctx, reason)
    order = _order(uow, fulfilment)
    if order.refundable > 0:
        order.refund(ctx, order.refundable, f"fulfilment_failed: {reason}", [], override_redeemed=False,
                     automatic=False)
    open_fulfilments(uow, ctx).remove(ctx, fulfilment.id)
    return _state(fulfilment, changed=True)


# ---- what suppliers say ----


def record_attempt(cmd: RecordAttempt, uow: Session) -> FulfilmentState:
    ctx = cmd.ctx
    if cmd.outcome not in OUTCOMES:
        raise InvalidInput("outcome", f"one of {', '.join(OUTCOMES)}")
    fulfilment = load_fulfilment(uow, cmd.fulfilment_id)
    attempt = fulfilment.attempt(cmd.attempt_id)
    if cmd.supplier is not None and cmd.supplier != attempt["supplier"]:
        raise AttemptConflict(f"attempt {cmd.attempt_id} was sent to another supplier", attempt_id=cmd.attempt_id)
    supplier = uow.load(Supplier, supplier_id(attempt["supplier"]),
                        UnknownSupplier(f"no supplier {attempt['supplier']}", supplier=attempt["supplier"]))
    changed = False
    if cmd.outcome == "succeeded":
        charged = parse_amount(cmd.charged, fulfilment.currency, "charged") if cmd.charged is not None \
            else attempt["cost"]
        changed = fulfilment.succeed(ctx, cmd.attempt_id, cmd.supplier_ref, charged)
        if changed:
            supplier.charge(ctx, cmd.attempt_id, charged)
            _order(uow, fulfilment).fulfilled(ctx, cmd.attempt_id, supplier.name, cmd.supplier_ref, charged)
            open_fulfilments(uow, ctx).remove(ctx, fulfilment.id)
            if fulfilment.kind == ProductKind.PLATFORM_GRANT.value:
                _extend_grant(uow, ctx, fulfilment)
    elif cmd.outcome == "failed":
        changed = fulfilment.fail(ctx, cmd.attempt_id, cmd.reason or "failed", cmd.retryable, cmd.supplier_ref)
        if changed:
            supplier.release(ctx, cmd.attempt_id)
    elif cmd.outcome == "reversed":
        changed = fulfilment.reverse(ctx, cmd.attempt_id, cmd.reason or "reversed")
        if changed:
            _reversed(uow, ctx, fulfilment, supplier, cmd.attempt_id)
    elif cmd.outcome == "resent":
        fulfilment.resent(ctx, cmd.attempt_id)
        changed = True
    elif cmd.outcome == "unknown":
        changed = fulfilment.lost_answer(ctx, cmd.attempt_id, cmd.reason or "no answer")
    if fulfilment.current is not None and ctx.now >= fulfilment.deadline:
        changed = fulfilment.escalate(ctx, "outcome still unknown at the deadline") or changed
    return _state(fulfilment, changed)


def _extend_grant(uow: Session, ctx: Context, fulfilment: Fulfilment) -> None:
    """A platform product's term: extended from its current end, by the product's days per unit."""
    product = uow.load(Product, product_id(fulfilment.sku), UnknownProduct(f"no product {fulfilment.sku}"))
    grant = uow.find(Grant, grant_id(fulfilment.sku, fulfilment.account_hmac))
    if grant is None:
        grant = Grant.start(ctx, fulfilment.sku, fulfilment.account_hmac)
        uow.add(grant)
    assert product.validity_days, "a platform grant is defined with its term (validity_days)"
    until = grant.extend(ctx, fulfilment.order_id, product.validity_days * fulfilment.quantity)
    # Each extension is entered on its new end's day; an earlier entry finds the term renewed.
    schedule(uow, ctx, DueKind.GRANT, grant.id, until, fulfilment.sku, fulfilment.amount, fulfilment.currency)


def _reversed(uow: Session, ctx: Context, fulfilment: Fulfilment, supplier: Supplier, attempt_id: str) -> None:
    """A success taken back: its charge returns to the float, and the order is fulfilled again
    (when the product says so) or refunded."""
    charged = fulfilment.attempts[attempt_id]["charged"] or Decimal(0)
    supplier.reverse(ctx, attempt_id, charged)
    order = _order(uow, fulfilment)
    order.fulfilment_reversed(ctx, attempt_id, supplier.name, charged)
    if order.status is OrderStatus.REFUNDED:  # an admin gave the money back already: nothing is sent again
        if fulfilment.status is FulfilmentStatus.REQUESTED:
            fulfilment.give_up(ctx, "order_refunded")
    elif fulfilment.status is FulfilmentStatus.REQUESTED:  # refulfil
        open_fulfilments(uow, ctx).add(ctx, fulfilment.id)
    elif order.refundable > 0:
        order.refund(ctx, order.refundable, "recharge_reversed", [], override_redeemed=False, automatic=False)
