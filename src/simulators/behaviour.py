"""How a simulated supplier behaves: its failure rates, delays, balance and prices, and the
seeded draws that decide, request by request, what happens.

A draw is a pure function of the seed, what is being decided, the request_id and the attempt:
the same seed gives the same outcomes whatever order requests arrive in, and a request sent
again (after a drop or a lost answer) gets a fresh draw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

INVALID_ACCOUNT_PREFIX = "0000"  # the simulator's accounts that do not exist (docs/upstream.md)


@dataclass(frozen=True)
class Behaviour:
    seed: int
    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: int = 0
    callback_delay_ms: int = 0
    reverse_rate: float = 0.0
    reverse_delay_ms: int = 1000
    balance: Decimal | None = None
    cost_rate: Decimal = Decimal(1)
    products: frozenset[str] | None = None  # None: every product is known

    def __post_init__(self) -> None:
        for name in ("fail_rate", "timeout_rate", "drop_rate", "reverse_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0 and 1")
        if min(self.latency_ms, self.callback_delay_ms, self.reverse_delay_ms) < 0:
            raise ValueError("delays must not be negative")
        if self.cost_rate <= 0 or (self.balance is not None and self.balance < 0):
            raise ValueError("cost_rate must be positive and balance not negative")

    def draw(self, purpose: str, request_id: str, attempt: int = 0) -> float:
        """A number in [0, 1) fixed by the seed, the purpose, the request_id and the attempt."""
        digest = hashlib.sha256(f"{self.seed}\0{purpose}\0{attempt}\0{request_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def drops(self, request_id: str, attempt: int) -> bool:
        """This arrival is lost before the supplier sees it."""
        return self.draw("drop", request_id, attempt) < self.drop_rate

    def loses_answer(self, request_id: str, attempt: int) -> bool:
        """This request is handled, but its answer never reaches the caller."""
        return self.draw("timeout", request_id, attempt) < self.timeout_rate

    def fails(self, request_id: str) -> bool:
        return self.draw("fail", request_id) < self.fail_rate

    def reverses(self, request_id: str) -> bool:
        return self.draw("reverse", request_id) < self.reverse_rate

    def supplier_ref(self, request_id: str) -> str:
        return "SIM-" + hashlib.sha256(f"{self.seed}\0ref\0{request_id}".encode()).hexdigest()[:16].upper()
