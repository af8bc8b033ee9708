"""Supplier reconciliation's rules, on made-up attempts and statements (the end-to-end run against
the simulator is tests/e2e/test_recharge.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from projections.models.supplier_statement import (
    AttemptRecord,
    StatementError,
    StatementLine,
    differences,
    read_statement,
)

AT = datetime(2026, 11, 5, tzinfo=UTC)


def attempt(status: str, charged: str | None = None, refunded: bool = False) -> AttemptRecord:
    return AttemptRecord(f"f-{status}-{uuid4().hex[:4]}", uuid4(), "sim", status,
                         Decimal(charged) if charged else None, AT if status == "succeeded" else None, [7],
                         refunded)


def line(request_id: str, status: str = "succeeded", charged: str = "9.50") -> StatementLine:
    return StatementLine(request_id, status, Decimal(charged), "USD", AT, 2)


def test_a_charge_for_an_attempt_refunded_here_is_money_lost() -> None:
    lost = attempt("failed", refunded=True)
    assert [d.kind for d in differences({lost.attempt_id: lost}, [line(lost.attempt_id)])] == ["money_lost"]


def test_matching_charges_and_reversals_are_no_difference() -> None:
    ok, gone = attempt("succeeded", "9.50"), attempt("reversed", "9.50")
    ours = {a.attempt_id: a for a in (ok, gone)}
    assert differences(ours, [line(ok.attempt_id), line(gone.attempt_id, "reversed", "0")]) == []


def test_a_reversal_there_of_a_success_here_is_named() -> None:
    ok = attempt("succeeded", "9.50")
    found = differences({ok.attempt_id: ok}, [line(ok.attempt_id, "reversed", "0")])
    assert [(d.kind, d.positions) for d in found] == [("reversed_there_succeeded_here", (7,))]


def test_a_success_outside_the_statements_period_is_not_a_claim() -> None:
    ok = attempt("succeeded", "9.50")
    december = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert differences({ok.attempt_id: ok}, [], december) == []
    assert [d.kind for d in differences({ok.attempt_id: ok}, [])] == ["claim"]


@pytest.mark.parametrize(("text", "where"), [
    ("id,status\n", "s.csv:1:"),
    ("request_id,status,charged,currency,completed_at\nx,done,1.00,USD,2026-11-05T00:00:00Z\n", "s.csv:2:"),
    ("request_id,status,charged,currency,completed_at\nx,succeeded,abc,USD,2026-11-05T00:00:00Z\n", "s.csv:2:"),
    ("request_id,status,charged,currency,completed_at\n\nx,succeeded,1.00,USD,2026-11-05\n", "s.csv:3:"),
])
def test_a_statement_that_is_not_the_protocols_names_its_line(text: str, where: str) -> None:
    with pytest.raises(StatementError, match=where):
        read_statement(text, "s.csv")
