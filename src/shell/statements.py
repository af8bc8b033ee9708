"""A supplier's statement asked of it (`GET /v1/statement`) and held against the attempts the
log recorded with it: what `ledger reconcile supplier --fetch` and the demo both do."""

from __future__ import annotations

from datetime import datetime

from ledger.application import LedgerApp
from ledger.fulfilment.connector import HttpConnector
from projections.models.supplier_statement import Difference, StatementLine, attempts_with, differences, read_statement


def fetch_statement(base_url: str, secret: str, timeout_ms: int, start: datetime | None = None,
                    end: datetime | None = None) -> tuple[str, str]:
    """The supplier's CSV statement of [start, end) and where it came from; raises `LostAnswer`."""
    connector = HttpConnector(base_url, secret, timeout_ms, 1)
    try:
        return connector.statement(start, end), f"{base_url}/v1/statement"
    finally:
        connector.close()


def held_against_log(app: LedgerApp, supplier: str, text: str, source: str,
                     period: tuple[datetime, datetime] | None = None) -> tuple[list[StatementLine], list[Difference]]:
    """The statement's lines and what does not match; raises `StatementError` naming the line."""
    lines = read_statement(text, source)
    return lines, differences(attempts_with(app, supplier), lines, period)
