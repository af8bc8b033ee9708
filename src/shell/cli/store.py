"""`ledger import-keys`, `ledger history`, `ledger expire`: the commands over the event store alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shell.cli.common import composed, err, fail, load_settings, note_generated_key, out


def import_keys(
    file: Annotated[Path, typer.Argument(help="CSV with a 'code' column, or one code per line")],
    sku: Annotated[str, typer.Option(help="the product the keys are for")],
    supplier: Annotated[str, typer.Option(help="who supplied the batch")],
    unit_cost: Annotated[str, typer.Option(help="cost of one key, e.g. 1.23")],
) -> None:
    """Import a batch of card keys: all lines or none, any number in one transaction."""
    from ledger.domain.errors import ImportRejected
    from ledger.supplier_import.files import read_codes, read_lines

    try:
        file.open("rb").close()
    except OSError as e:
        raise fail(f"cannot read {file}: {e}") from None
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        ledger = parts.ledger
        note_generated_key(parts.generated_key)
        try:
            with _ImportProgress() as progress:  # ends before anything else is printed
                codes, line_errors = read_codes(read_lines(file, progress.phase("read", file.stat().st_size)))
                result = ledger.import_keys(
                    ledger.context("cli"), sku=sku, supplier=supplier, unit_cost=unit_cost, codes=codes,
                    line_errors=line_errors, progress=progress,
                )
        except OSError as e:
            raise fail(f"cannot read {file}: {e}") from None
        except ImportRejected as e:
            for line_error in e.errors:
                err.print(f"{file}:{line_error.line}: {line_error.reason}", markup=False, highlight=False,
                          soft_wrap=True)
            raise fail(f"nothing imported: {len(e.errors)} bad line(s) in {file}") from None
    out.print(f"imported {len(result.key_ids)} keys into batch {result.batch_id} (log position {result.position})",
              markup=False, highlight=False)


class _ImportProgress(Progress):
    """`ledger.supplier_import.importer.ImportProgress` as rich bars on stderr, one per phase."""

    LABELS: ClassVar[dict[str, str]] = {"read": "reading file", "check": "checking codes", "write": "writing keys"}

    def __init__(self) -> None:
        super().__init__(
            TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        )

    def phase(self, name: str, total: int) -> Callable[[int], None]:
        task = self.add_task(self.LABELS.get(name, name), total=total)
        return lambda n: self.advance(task, n)


# ---- history ----

_HIDDEN = frozenset({"meta", "sealed_code", "code_hmac"})


def _show(value: Any) -> str:
    if isinstance(value, list) and (len(value) > 3 or any(isinstance(v, dict) for v in value)):
        return f"[{len(value)} items]"
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"))[:120]
    return str(value)


def history(
    ident: Annotated[str, typer.Argument(metavar="ID", help="order, key or batch id; a SKU; or a customer id")],
) -> None:
    """The event timeline of an order, key, batch, product or customer."""
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        ledger = parts.ledger
        note_generated_key(parts.generated_key)
        entries = ledger.reads.history(ident)
    if not entries:
        raise fail(f"nothing recorded for {ident}")
    table = Table(title=f"history of {ident}")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("stream", no_wrap=True)
    table.add_column("v", justify="right")
    table.add_column("event", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    for e in entries:
        details = ", ".join(
            f"{k}={_show(v)}" for k, v in e.data.items() if k not in _HIDDEN and v not in (None, "", [], {})
        )
        actor = e.data.get("meta", {}).get("actor")
        if actor:
            details = f"by {actor}; {details}" if details else f"by {actor}"
        table.add_row(
            e.timestamp.strftime("%Y-%m-%d %H:%M:%S"), f"{e.stream} {str(e.stream_id)[:8]}", str(e.version),
            e.event, details,
        )
    out.print(table)


# ---- expire ----


def expire() -> None:
    """Run the sweeper once: expire every unpaid order past its deadline, and end every key,
    access and grant past its validity."""
    with composed(load_settings(), build=lambda parts: parts.ledger) as parts:
        ledger = parts.ledger
        note_generated_key(parts.generated_key)
        changes = ledger.expire_due(ledger.context("sweeper"))
        ended = ledger.expire_validities(ledger.context("sweeper"))
    out.print(f"expired {len(changes)} order(s)", markup=False, highlight=False)
    out.print(f"ended {ended} key(s), access(es) or grant(s) past their validity", markup=False, highlight=False)


