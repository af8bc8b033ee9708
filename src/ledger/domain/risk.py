"""The seam through which order placement asks for a risk verdict (fraud read model, later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True)
class OrderFacts:
    customer_id: str
    sku: str
    quantity: int
    channel: str
    amount_due: Decimal
    coupon_code: str | None
    client_ip: str | None
    device_id: str | None


@dataclass(frozen=True)
class RiskVerdict:
    rule: str
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)


class RiskAssessor(Protocol):
    def assess(self, facts: OrderFacts) -> RiskVerdict | None:
        """A verdict means reject; None means go ahead."""
        ...
