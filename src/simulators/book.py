"""What the simulated supplier has received and charged, and the record file that keeps it.

Every state change is one `Change`, applied to the book and, with a record file, appended to
it as a JSON line before anyone is answered; a restarted simulator folds the file back. Lines
are flushed, not fsynced: the record survives a killed process, not a power cut."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from simulators.protocol import (
    FAILED,
    PENDING,
    REVERSAL_REASON,
    REVERSED,
    SUCCEEDED,
    RechargeRequest,
    money,
    parse_time,
    timestamp,
)

ZERO = Decimal("0.00")


@dataclass
class Recharge:
    """One request_id, from its first arrival on."""

    request: RechargeRequest
    supplier_ref: str
    received_at: datetime
    status: str = PENDING
    reason: str | None = None
    retryable: bool | None = None
    charged: Decimal | None = None
    completed_at: datetime | None = None  # when it succeeded or failed; a reversal keeps it
    reversed_at: datetime | None = None
    reversal_due: datetime | None = None  # a success the supplier will take back then

    def answer(self) -> dict[str, Any]:
        """The protocol's answer body for this request as it stands."""
        body: dict[str, Any] = {"request_id": self.request.request_id, "status": self.status,
                                "supplier_ref": self.supplier_ref}
        if self.reason is not None:
            body["reason"] = self.reason
        if self.retryable is not None:
            body["retryable"] = self.retryable
        if self.charged is not None:
            body["charged"] = money(self.charged)
        return body

    def listing(self) -> dict[str, Any]:
        """Its entry in GET /v1/charges (the simulator's test aid: the account in clear)."""
        request = self.request
        return {
            **self.answer(), "product": request.product, "account": request.account,
            "amount": money(request.amount), "currency": request.currency,
            "charged": money(self.charged or ZERO), "received_at": timestamp(self.received_at),
            "completed_at": timestamp(self.completed_at) if self.completed_at else None,
            "reversed_at": timestamp(self.reversed_at) if self.reversed_at else None,
        }


@dataclass(frozen=True)
class Change:
    """One state change of one request, as recorded: `kind` is received, succeeded, failed,
    reversal_due or reversed."""

    kind: str
    request_id: str
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return json.dumps({"at": timestamp(self.at), "change": self.kind, "request_id": self.request_id,
                           **self.fields}, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Change:
        data = json.loads(line)
        kind, request_id, at = data.pop("change"), data.pop("request_id"), parse_time(data.pop("at"))
        return cls(kind, request_id, at, data)


class Book:
    """Every request received, in arrival order, and what was charged for them."""

    def __init__(self) -> None:
        self.recharges: dict[str, Recharge] = {}
        self._sink: IO[str] | None = None

    def get(self, request_id: str) -> Recharge | None:
        return self.recharges.get(request_id)

    def spent(self) -> Decimal:
        """What the merchant owes for successes still standing: what a prepaid balance pays."""
        return sum((r.charged or ZERO for r in self.recharges.values() if r.status == SUCCEEDED), ZERO)

    def statement(self, start: datetime | None, end: datetime | None) -> list[Recharge]:
        """Succeeded and reversed requests completed in [start, end), by completion time."""
        rows = [
            r for r in self.recharges.values()
            if r.status in (SUCCEEDED, REVERSED) and r.completed_at is not None
            and (start is None or r.completed_at >= start) and (end is None or r.completed_at < end)
        ]
        return sorted(rows, key=lambda r: (r.completed_at or r.received_at, r.request.request_id))

    def unfinished(self) -> Iterator[Recharge]:
        """Requests still pending, and successes with a reversal still to come."""
        return (r for r in self.recharges.values() if r.status == PENDING or
                (r.status == SUCCEEDED and r.reversal_due is not None))

    # ---- changes ----

    def receive(self, request: RechargeRequest, supplier_ref: str, at: datetime) -> Recharge:
        self.record(Change("received", request.request_id, at, {
            "product": request.product, "account": request.account, "amount": money(request.amount),
            "currency": request.currency, "callback_url": request.callback_url, "supplier_ref": supplier_ref,
        }))
        return self.recharges[request.request_id]

    def succeed(self, recharge: Recharge, charged: Decimal, at: datetime) -> None:
        self.record(Change(SUCCEEDED, recharge.request.request_id, at, {"charged": money(charged)}))

    def fail(self, recharge: Recharge, reason: str, retryable: bool, at: datetime) -> None:
        self.record(Change(FAILED, recharge.request.request_id, at, {"reason": reason, "retryable": retryable}))

    def schedule_reversal(self, recharge: Recharge, due: datetime, at: datetime) -> None:
        self.record(Change("reversal_due", recharge.request.request_id, at, {"due": timestamp(due)}))

    def reverse(self, recharge: Recharge, at: datetime) -> None:
        self.record(Change(REVERSED, recharge.request.request_id, at))

    def record(self, change: Change) -> None:
        """Write the change to the record file (if any), then apply it."""
        if self._sink is not None:
            self._sink.write(change.line())
            self._sink.flush()
        self.apply(change)

    def apply(self, change: Change) -> None:
        fields, at = change.fields, change.at
        if change.kind == "received":
            request = RechargeRequest(change.request_id, fields["product"], fields["account"],
                                      Decimal(fields["amount"]), fields["currency"], fields.get("callback_url"))
            self.recharges[change.request_id] = Recharge(request, fields["supplier_ref"], at)
            return
        recharge = self.recharges[change.request_id]
        if change.kind == SUCCEEDED:
            recharge.status, recharge.charged, recharge.completed_at = SUCCEEDED, Decimal(fields["charged"]), at
        elif change.kind == FAILED:
            recharge.status, recharge.completed_at = FAILED, at
            recharge.reason, recharge.retryable, recharge.charged = fields["reason"], fields["retryable"], ZERO
        elif change.kind == "reversal_due":
            recharge.reversal_due = parse_time(fields["due"])
        elif change.kind == REVERSED:
            recharge.status, recharge.reason, recharge.charged = REVERSED, REVERSAL_REASON, ZERO
            recharge.reversed_at, recharge.reversal_due = at, None
        else:
            raise ValueError(f"unknown change {change.kind!r}")

    # ---- the record file ----

    def open_record(self, path: Path) -> None:
        """Fold the record file back (a torn last line from a kill is cut off), then keep it
        open, locked against a second simulator, for appending."""
        sink = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(sink.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sink.close()
            raise RuntimeError(f"{path} is the record of another running simulator") from None
        sink.seek(0)
        text = sink.read()
        complete = text[: text.rfind("\n") + 1]
        if len(complete) < len(text):
            os.truncate(sink.fileno(), len(complete.encode()))
            sink.seek(0, os.SEEK_END)
        for number, line in enumerate(complete.splitlines(), start=1):
            try:
                self.apply(Change.from_line(line))
            except (ValueError, KeyError, TypeError) as error:
                sink.close()
                raise ValueError(f"{path}, line {number}: not a change of this record ({error!r})") from None
        self._sink = sink

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

