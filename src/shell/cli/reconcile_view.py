"""How `ledger reconcile` shows a reconciliation: rich tables for the terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from ledger.domain.money import format_amount
from projections.models.reconcile import CHECKS, Reconciliation

SHOWN_POSITIONS = 12


def _positions(positions: tuple[int, ...]) -> str:
    shown = ", ".join(str(p) for p in positions[:SHOWN_POSITIONS])
    more = len(positions) - SHOWN_POSITIONS
    return f"{shown}, … (+{more})" if more > 0 else shown


def reconciliation_tables(result: Reconciliation, head: int) -> Group:
    checks = Table("check", "examined", "exceptions", title=f"reconciliation at position {result.position} "
                   f"(log head {head})", title_justify="left")
    for check in CHECKS:
        count = result.count(check)
        checks.add_row(check, result.examined[check], "[green]0[/green]" if not count else f"[red]{count}[/red]")
    money = Table("currency", "money in", "revenue", "refunds payable", "money in = revenue + payable",
                  title="money (from the journal)", title_justify="left")
    for t in result.totals:
        money.add_row(t.currency, format_amount(t.money_in, t.currency), format_amount(t.revenue, t.currency),
                      format_amount(t.refunds_payable, t.currency),
                      "yes" if t.balanced else "[red]no[/red]")
    parts: list[Table] = [checks, money]
    if result.findings:
        found = Table("check", "subject", "exception", "positions", title="exceptions", title_justify="left",
                      show_lines=True)
        for f in result.findings:
            found.add_row(f.check, f.subject, f.detail, _positions(f.positions))
        parts.append(found)
    return Group(*parts)
