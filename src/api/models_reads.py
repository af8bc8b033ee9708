"""Response bodies of the read routes: inventory, reports, books, fraud, audit, projections.

Money travels as decimal strings (`Money`), never floats. Nothing here ever holds a code."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from api.models import MONEY_SCHEMA, Money, Positioned, Priced
from projections.engine.read_side import ProjectionStatus
from projections.models import report_queries

# ---- inventory ----


class StockCounts(BaseModel):
    available: int
    reserved: int
    delivered: int
    redeemed: int
    revoked: int
    voided: int
    expired: int = 0  # delivered, never redeemed, past the product's validity


class BatchStock(StockCounts, Priced):
    batch_id: str
    supplier: str | None
    currency: str = Field(description="the SKU's currency")
    unit_cost: Money | None


class SkuStock(StockCounts):
    sku: str
    low_stock: bool
    threshold: int
    batches: list[BatchStock] | None = Field(default=None, description="with ?by=batch only")


class InventoryOut(Positioned):
    items: list[SkuStock]
    next_after: str | None = Field(default=None, description="pass as `after` for the next page; null on the last page")


class SkuInventoryOut(Positioned, SkuStock):
    pass


# ---- reports ----


ReportRow = Annotated[dict[str, Any], WithJsonSchema({
    "type": "object", "required": ["currency"],
    "properties": {
        "currency": {"type": "string"},
        **{m: MONEY_SCHEMA for m in dict.fromkeys(report_queries.SALES.money + report_queries.PROFIT.money)},
        "margin": {"anyOf": [{"type": "string", "pattern": r"^-?\d+\.\d{4}$"}, {"type": "null"}],
                   "description": "profit / (revenue - discounts - refunds), 4 places; null when that is 0"},
    },
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
}, mode="serialization")]


class ReportOut(Positioned):
    report: str
    date_from: date | None = Field(serialization_alias="from")
    date_to: date | None = Field(serialization_alias="to")
    group_by: list[str]
    rows: list[ReportRow] = Field(description="the group's dimensions, currency, counts and summed money")


# ---- books ----


class AccountBalance(Priced):
    account: str
    type: str
    currency: str
    debit: Money
    credit: Money
    balance: Money = Field(description="debit - credit")


class CurrencyTotal(Priced):
    currency: str
    debit: Money
    credit: Money
    balanced: bool


class TrialBalanceOut(Positioned):
    as_of: int | None
    balanced: bool
    accounts: list[AccountBalance]
    totals: list[CurrencyTotal]


class JournalEntry(Priced):
    position: int
    entry_no: int
    event_type: str
    occurred_at: datetime
    currency: str
    debit: Money
    credit: Money
    order_id: str | None
    batch_id: str | None
    key_id: str | None


class AccountOut(Positioned):
    account: str
    type: str
    description: str
    balances: list[AccountBalance]
    entries: list[JournalEntry]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")


# ---- fraud ----


class FraudAlert(BaseModel):
    rule: str
    subject_kind: str
    subject_id: str
    score: int
    count: int
    positions: list[int]
    position: int
    occurred_at: datetime


class AlertsOut(Positioned):
    alerts: list[FraudAlert]
    next_since: int | None = Field(description="pass as `since` for the next page; null on the last page")


class SubjectOut(Positioned):
    subject_kind: str
    subject_id: str
    alerted: bool
    score: int
    alerts: int
    top_rule: str | None
    rule_scores: dict[str, int]
    last_position: int | None
    updated_at: datetime | None
    recent_alerts: list[FraudAlert]


# ---- audit ----


class AuditEvent(BaseModel):
    position: int | None = Field(description="the event's log position (null where the store does not say)")
    type: str = Field(examples=["Order.Placed"])
    stream_id: str
    version: int
    timestamp: datetime
    data: dict[str, Any] = Field(description="the event's fields with meta; sealed codes and code hashes removed")


class AuditFeedOut(Positioned):
    events: list[AuditEvent]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")


class AuditStreamOut(Positioned):
    stream_id: str
    events: list[AuditEvent]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")


# ---- projections ----


class ProjectionsOut(Positioned):
    projections: list[ProjectionStatus]  # the runner's own record, served as is


# ---- reconciliation ----


class ReconciliationTotal(Priced):
    currency: str
    money_in: Money = Field(description="balance of payment_clearing: captured minus returned")
    revenue: Money = Field(description="revenue - discounts - refunds")
    refunds_payable: Money = Field(description="balance of customer_deposits: captured, neither delivered nor returned")
    balanced: bool = Field(description="money_in == revenue + refunds_payable")


class ReconciliationException(BaseModel):
    check: str = Field(examples=["payments"])
    subject: str = Field(examples=["order 5f0c…"])
    detail: str
    positions: list[int] = Field(description="the log positions that prove it")


class ReconciliationOut(Positioned):
    computed_at: datetime = Field(description="when the background job computed it, at `position`")
    clean: bool
    examined: dict[str, str] = Field(description="per check, what it looked at")
    totals: list[ReconciliationTotal]
    exceptions: list[ReconciliationException]
