"""Request and response bodies. Money travels as decimal strings with exactly the currency's
minor units (`Priced`); codes only in KeysOut."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, cast, get_args
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

from ledger.domain import text as text_rule
from ledger.domain.money import amount_text, format_amount
from ledger.results import PaymentResult

MONEY_SCHEMA = {
    "type": "string", "pattern": r"^-?\d+(\.\d{2,3})?$", "examples": ["30.00", "2635.20"],
    "description": "a decimal string with exactly the currency's minor units (ISO 4217): 2 for most, "
                   "0 for JPY, KRW, VND, CLP, ISK, 3 for KWD, BHD, OMR",
}
# Outside a `Priced` body (only PaymentOut.amount) an amount is shown as the ledger decided it,
# which is already in the currency's minor units (ledger.domain.money.parse_amount).
Money = Annotated[Decimal, PlainSerializer(amount_text, return_type=str, when_used="json"),
                  WithJsonSchema(MONEY_SCHEMA, mode="serialization")]
MoneyIn = Annotated[str, Field(pattern=r"^\d{1,12}(\.\d{1,4})?$", examples=["9.99"])]
# As the ledger checks text (ledger.domain.text): printable, no control, zero-width or bidi
# characters, no surrounding spaces. What a client sends is NFC-normalised first, so `é` in either
# of its spellings is one value; the schema states the rule as a pattern.
TEXT_PATTERN = text_rule.PATTERN


def _nfc(value: object) -> object:
    return text_rule.normalised(value) if isinstance(value, str) else value


def _text_rule(value: str) -> str:
    problem = text_rule.problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


NFC = BeforeValidator(_nfc)
TEXT_RULE = AfterValidator(_text_rule)
# Free text as the ledger takes it (`Channel` is the same, shorter): in every request model,
# query and path parameter that names something.
Text = Annotated[str, NFC, Field(min_length=1, max_length=text_rule.MAX_TEXT,
                                 json_schema_extra={"pattern": TEXT_PATTERN}), TEXT_RULE]
Sku = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["GAME-1"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _in_minor_units(value: Any, currency: str) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value, currency)
    if isinstance(value, dict):
        return {k: _in_minor_units(v, currency) for k, v in value.items()}
    return value


class Priced(BaseModel):
    """A body in one `currency`: in JSON, each of its money fields (a Decimal, or a dict of them)
    has exactly the currency's minor units, whatever scale the read model gave back."""

    currency: str

    # No return annotation on purpose: pydantic then documents the fields' own schemas (Money).
    @model_serializer(mode="wrap")
    def _money_in_minor_units(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # type: ignore[no-untyped-def]
        data = handler(self)
        if info.mode_is_json() and isinstance(data, dict):
            for name, value in self.__dict__.items():
                if name in data and isinstance(value, Decimal | dict):
                    data[name] = _in_minor_units(value, self.currency)
        return data


class RelayOut(BaseModel):
    position: int
    lag_events: int
    error: str | None
    error_since: str | None


class ReadyOut(BaseModel):
    ready: bool
    head: int | None = None
    lag_events: int | None = None
    reason: str | None = Field(default=None, description="why the store could not be read")
    relay: RelayOut | None = Field(default=None, description="reported when a relay is configured; never gating")
    audit_checkpoint_refused: str | None = Field(
        default=None, description="why the server refuses to sign the audit tree (it does not extend the last "
        "checkpoint signed: history rewritten or removed); reported while it lasts, never gating (docs/audit.md)")


class Positioned(BaseModel):
    position: int = Field(description="log position of the last event this command wrote (or read models reflect)")


class OrderIn(Strict):
    customer_id: Text
    sku: Sku
    quantity: int = Field(ge=1, le=10_000)
    channel: Text = "default"
    coupon_code: Text | None = None
    client_ip: Text | None = None
    device_id: Text | None = None
    recipient_account: Text | None = Field(
        default=None, repr=False, examples=["13812345678"],
        description="the account a direct recharge or platform grant is for (a phone number, an email, as the "
                    "product says): required for those products, refused for others; personal data, sealed "
                    "when stored and only ever shown masked (`recipient_account_masked`)")


# As ledger.domain.orders.OrderStatus and PaymentOutcome say (tests/e2e/test_api_recharge_orders.py checks).
OrderStatusName = Literal["placed", "rejected", "reserved", "fulfilling", "delivered", "expired", "cancelled",
                          "refunded"]
PaymentOutcomeName = Literal["delivered", "accepted", "refunded", "rejected"]
OrderStatusOut = Annotated[OrderStatusName, Field(
    description="`reserved`: awaiting payment; `fulfilling`: paid, an upstream supplier is fulfilling it (it ends "
                "`delivered`, or `refunded` when no supplier could)")]
PaymentOutcomeOut = Annotated[PaymentOutcomeName, Field(
    description="`delivered`: codes or access given; `accepted`: paid, an upstream supplier is fulfilling the "
                "order (follow its status); `refunded`: captured, then returned (nothing could be given); "
                "`rejected`")]


def order_status(status: str) -> OrderStatusName:
    """The ledger's order status as the response models name it (ValueError for one they do not)."""
    if status not in get_args(OrderStatusName):
        raise ValueError(f"order status {status!r} is not in the API's schema")
    return cast(OrderStatusName, status)


def payment_outcome(outcome: str) -> PaymentOutcomeName:
    """The ledger's payment outcome as the response models name it (ValueError for one they do not)."""
    if outcome not in get_args(PaymentOutcomeName):
        raise ValueError(f"payment outcome {outcome!r} is not in the API's schema")
    return cast(PaymentOutcomeName, outcome)


MASKED = Field(default=None, examples=["138****5678"],
               description="the recipient account, masked (enough to recognise, not to use); null for products "
                           "that take none")


class OrderOut(Positioned, Priced):
    order_id: UUID
    status: OrderStatusOut
    amount_due: Money
    currency: str
    reserved_until: datetime
    recipient_account_masked: str | None = MASKED


class PaymentIn(Strict):
    payment_reference: Text
    amount: MoneyIn
    provider: Text


class PaymentOut(Positioned):
    order_id: UUID
    payment_reference: str
    outcome: PaymentOutcomeOut
    amount: Money
    key_ids: list[UUID]
    reason: str
    replayed: bool

    @classmethod
    def of(cls, result: PaymentResult) -> PaymentOut:
        return cls(order_id=result.order_id, payment_reference=result.payment_reference,
                   outcome=payment_outcome(result.outcome), amount=result.amount, key_ids=result.key_ids,
                   reason=result.reason, replayed=result.replayed, position=result.position)


class TimelineEvent(BaseModel):
    at: datetime
    stream: str
    event: str
    version: int


class OrderView(Positioned, Priced):
    order_id: UUID
    status: OrderStatusOut
    customer_id: str
    sku: str
    quantity: int
    channel: str
    currency: str
    unit_price: Money
    discount: Money
    amount_due: Money
    amount_paid: Money
    amount_refunded: Money
    reserved_until: datetime | None
    recipient_account_masked: str | None = MASKED
    key_ids: list[UUID]
    timeline: list[TimelineEvent]


class KeyOut(BaseModel):
    key_id: UUID
    code: str
    status: str


class KeysOut(Positioned):
    keys: list[KeyOut]


class CancelIn(Strict):
    reason: Text = "cancelled_by_customer"


class RefundIn(Strict):
    amount: MoneyIn
    reason: Text
    key_ids: list[UUID] | None = None
    override_redeemed: bool = False


class OrderChangeOut(Positioned):
    order_id: UUID
    status: OrderStatusOut
    released_key_ids: list[UUID]
    revoked_key_ids: list[UUID]
