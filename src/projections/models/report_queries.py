"""Report queries: every query the HTTP routes and the UI run against a read model, over a
`ReadSource` (the live read models, or a past point folded by `projections.engine.as_of`).
Routes parse input, call these, and answer; none of them writes SQL or reads the log itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from projections.engine.as_of import ReadSource
from projections.engine.base import Row
from projections.models.fraud import Fraud, alert_counts, alerts, latest_alerts, subject
from projections.models.journal import Journal, TrialBalance
from projections.models.journal import trial_balance as journal_trial_balance
from projections.models.profit import margin

ZERO = Decimal(0)


# ---- inventory ----


def inventory(
    source: ReadSource, sku: str | None = None, *, batches: bool = False, after: str = "", limit: int | None = None
) -> tuple[list[Row], list[Row] | None]:
    """The rows of SKUs after `after` in SKU order (at most `limit`), or one SKU's row, and with
    `batches` their batches' rows; each with its `expired` count (kept in a table of its own:
    `projections.models.inventory`)."""
    view = source.view("inventory")
    if sku is None:
        skus = view.select("skus", "sku > ?", (after,), order="sku", limit=limit)
        span: tuple[str, ...] = (after, skus[-1]["sku"]) if skus else (after, after)
        found = view.select("batches", "sku > ? AND sku <= ?", span, order="sku, batch_id") if batches else None
        expired = view.select("expired", "sku > ? AND sku <= ?", span)
    else:
        skus = view.select("skus", "sku = ?", (sku,))
        found = view.select("batches", "sku = ?", (sku,), order="batch_id") if batches and skus else None
        expired = view.select("expired", "sku = ?", (sku,)) if skus else []
    by_sku: dict[str, int] = {}
    by_batch: dict[str, int] = {}
    for row in expired:
        by_sku[row["sku"]] = by_sku.get(row["sku"], 0) + int(row["expired"] or 0)
        by_batch[row["batch_id"]] = by_batch.get(row["batch_id"], 0) + int(row["expired"] or 0)
    skus = [{**row, "expired": by_sku.get(row["sku"], 0)} for row in skus]
    if found is not None:
        found = [{**row, "expired": by_batch.get(row["batch_id"], 0)} for row in found]
    return skus, found


# ---- sales and profit ----


@dataclass(frozen=True)
class DailyReport:
    """A report summing a daily read model's rows over chosen dimensions, kept apart by currency."""

    name: str
    dimensions: dict[str, str]  # query name -> column
    counts: tuple[str, ...]
    money: tuple[str, ...]

    @property
    def pattern(self) -> str:
        names = "|".join(self.dimensions)
        return rf"^({names})(,({names}))*$"

    def columns(self, group_by: Sequence[str]) -> list[str]:
        return [*group_by, "currency", *self.counts, *self.money, *(("margin",) if self.name == "profit" else ())]


SALES = DailyReport(
    "sales", {"day": "day", "sku": "sku", "channel": "channel", "promotion": "promotion"},
    ("orders", "units"), ("gross", "discounts", "refunds", "net", "returned_payments"),
)
PROFIT = DailyReport(
    "profit", {"day": "day", "sku": "sku", "supplier": "supplier", "batch": "batch_id"},
    ("keys_sold", "keys_written_off"), ("revenue", "discounts", "refunds", "cost_of_goods", "write_offs", "profit"),
)


def daily_report(source: ReadSource, report: DailyReport, group_by: Sequence[str],
                 date_from: date | None = None, date_to: date | None = None) -> list[Row]:
    """The report's rows between two days (inclusive), summed per group and currency; money is
    summed on Decimal; profit's margin is recomputed from each group's sums."""
    where, params = [], []
    if date_from:
        where.append("day >= ?")
        params.append(date_from.isoformat())
    if date_to:
        where.append("day <= ?")
        params.append(date_to.isoformat())
    rows = source.view(report.name).select("daily", " AND ".join(where), params)
    return _summed(report, rows, list(group_by))


def last_day(source: ReadSource, report: DailyReport) -> date | None:
    """The last day the report has a row for (None: no rows)."""
    view = source.view(report.name)
    rows = source.store.query(f"SELECT MAX(day) FROM {view.table('daily')}")
    return date.fromisoformat(str(rows[0][0])) if rows and rows[0][0] else None


def _summed(report: DailyReport, rows: Sequence[Row], group_by: list[str]) -> list[Row]:
    columns = [report.dimensions[g] for g in group_by]
    groups: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = (*(row[c] for c in columns), row["currency"])
        total = groups.get(key)
        if total is None:
            total = groups[key] = {
                **{g: row[c] for g, c in zip(group_by, columns, strict=True)}, "currency": row["currency"],
                **{c: 0 for c in report.counts}, **{m: ZERO for m in report.money},
            }
        for c in report.counts:
            total[c] += int(row[c] or 0)
        for m in report.money:
            total[m] += row[m] if row[m] is not None else ZERO
    out = [groups[k] for k in sorted(groups, key=lambda k: tuple(str(v) for v in k))]
    if report.name == "profit":
        for total in out:
            total["margin"] = margin(total["profit"], total["revenue"] - total["discounts"] - total["refunds"])
    return out


# ---- the books ----


def _journal(source: ReadSource) -> Journal:
    journal = source.view("journal")
    assert isinstance(journal, Journal)
    return journal


def trial_balance(source: ReadSource) -> TrialBalance:
    """Every account's committed debits, credits and balance per currency."""
    return journal_trial_balance(source.store, _journal(source))


def account_entries(source: ReadSource, account: str, after: int, position: int, limit: int) -> tuple[list[Row], bool]:
    """An account's journal entries at positions after `after` up to `position`, in log order:
    at least `limit` of them if there are, never splitting one event's entries over two pages;
    and whether more follow."""
    journal = source.view("journal")
    rows = journal.select("entries", "account = ? AND position > ? AND position <= ?", (account, after, position),
                          order="position, entry_no", limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    if more and rows:
        # The next page starts after a position: the rest of the last event's entries go on this one.
        last = rows[-1]
        rows += journal.select("entries", "account = ? AND position = ? AND entry_no > ?",
                               (account, last["position"], last["entry_no"]), order="entry_no")
    return rows, more


# ---- fraud ----


def _fraud(source: ReadSource) -> Fraud:
    view = source.view("fraud")
    assert isinstance(view, Fraud)
    return view


def fraud_alerts(source: ReadSource, *, rule: str | None = None, subject_kind: str | None = None,
                 subject_id: str | None = None, since: int = 0, until: int | None = None,
                 limit: int | None = None) -> list[Row]:
    """Alerts raised at positions after `since` (and at most `until`), in log order, filtered."""
    return alerts(source.store, _fraud(source), rule=rule, subject_kind=subject_kind, subject_id=subject_id,
                  since=since, until=until, limit=limit)


def latest_fraud_alerts(source: ReadSource, *, rule: str | None = None, until: int | None = None,
                        limit: int = 10) -> list[Row]:
    """The newest `limit` alerts up to `until`, newest first (SQL LIMIT: the pages that show a few)."""
    return latest_alerts(source.store, _fraud(source), rule=rule, until=until, limit=limit)


def fraud_alert_counts(source: ReadSource, until: int | None = None) -> dict[str, tuple[int, int]]:
    """Per rule: (alerts raised, distinct subjects alerted) up to `until`."""
    return alert_counts(source.store, _fraud(source), until=until)


def fraud_counters(source: ReadSource, kind: str, ident: str) -> list[Row]:
    """One subject's count per rule and how many alerts each count raised (`level`), by rule."""
    return _fraud(source).select("counters", "subject_kind = ? AND subject_id = ?", (kind, ident), order="rule")


def fraud_subject(source: ReadSource, kind: str, ident: str, recent: int = 50) -> tuple[Row | None, list[Row]]:
    """One subject's scores (None if never alerted) and its latest `recent` alerts."""
    view = _fraud(source)
    found = subject(source.store, view, kind, ident)
    latest = latest_alerts(source.store, view, subject_kind=kind, subject_id=ident, limit=recent)[::-1]
    return found, latest
