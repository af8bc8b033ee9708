"""Domain errors. Each has a stable `code`; the API turns it into a problem-details type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID


class DomainError(Exception):
    """A rule said no. `code` is stable and documented; `status` is the HTTP analogue."""

    code: ClassVar[str] = "domain-error"
    status: ClassVar[int] = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its state, whatever its constructor takes (it crosses to HTTP workers)."""
        return _rebuild, (type(self), self.args, self.__dict__)


class InvalidInput(DomainError):
    code = "invalid-input"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.field = field


class NotFound(DomainError):
    code = "not-found"
    status = 404


class UnknownProduct(NotFound):
    code = "unknown-product"


class UnknownOrder(NotFound):
    code = "unknown-order"


class UnknownBatch(NotFound):
    code = "unknown-batch"


class UnknownCoupon(NotFound):
    code = "unknown-coupon"


class UnknownCode(NotFound):
    code = "unknown-code"


class AlreadyExists(DomainError):
    code = "already-exists"


class ProductRetired(DomainError):
    code = "product-retired"


class NotSellable(DomainError):
    code = "not-sellable"


class Contention(DomainError):
    """Bounded retries on version conflicts ran out; safe to retry the request."""

    code = "contention"
    status = 503


# --- order placement: these record a rejected order and are raised after saving it ---


class OrderRejected(DomainError):
    """The order was recorded as rejected. `order_id` points at the record."""

    code = "order-rejected"

    def __init__(self, message: str, order_id: UUID | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.order_id = order_id


class OutOfStock(OrderRejected):
    code = "out-of-stock"


class PurchaseLimitReached(OrderRejected):
    code = "purchase-limit-reached"


class TooManyUnpaidReservations(OrderRejected):
    code = "too-many-unpaid-reservations"


class CouponNotApplicable(OrderRejected):
    code = "coupon-not-applicable"


class CouponExhausted(OrderRejected):
    code = "coupon-exhausted"


class FlashSaleLimitReached(OrderRejected):
    code = "flash-sale-limit-reached"


class RiskRejected(OrderRejected):
    code = "risk-rejected"


# --- payments, cancellation, refunds ---


class AmountMismatch(DomainError):
    code = "amount-mismatch"


class PaymentReferenceConflict(DomainError):
    code = "payment-reference-conflict"


class PaymentRejected(DomainError):
    """A payment callback that was recorded as rejected before; replayed idempotently."""

    code = "payment-rejected"


class InvalidOrderState(DomainError):
    code = "invalid-order-state"


class RefundExceedsPaid(DomainError):
    code = "refund-exceeds-paid"


class RedeemedKeyRefund(DomainError):
    code = "redeemed-key-refund-needs-override"


# --- redemption ---


class KeyNotDelivered(DomainError):
    code = "key-not-delivered"


class AlreadyRedeemed(DomainError):
    code = "already-redeemed"


class KeyRevoked(DomainError):
    code = "key-revoked"


class KeyVoided(DomainError):
    code = "key-voided"


class KeyExpired(DomainError):
    code = "key-expired"


class WrongPlatform(DomainError):
    code = "wrong-platform"


# --- supply ---


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str


class ImportRejected(DomainError):
    code = "import-rejected"
    status = 422

    def __init__(self, errors: list[LineError]) -> None:
        lines = "; ".join(f"line {e.line}: {e.reason}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"nothing imported, {len(errors)} bad line(s): {lines}{more}")
        self.errors = errors


class BatchAlreadyRecalled(DomainError):
    code = "batch-already-recalled"


# --- upstream suppliers and fulfilment ---


class UnknownSupplier(NotFound):
    code = "unknown-supplier"


class UnknownFulfilment(NotFound):
    code = "unknown-fulfilment"


class AttemptConflict(DomainError):
    """An answer about an attempt that contradicts what is recorded of it (another outcome, or
    an attempt this fulfilment never made): nothing is changed."""

    code = "attempt-conflict"


def _rebuild(cls: type[DomainError], args: tuple[Any, ...], state: dict[str, Any]) -> DomainError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
