"""Analyst replay: fold the whole history, in order, into a report nobody planned for.

A report is a small class: one method per event class it cares about, registered with
`@handles(Order.Placed)` and taking that event, and `rows()` for its result. Replay reads the
notification log directly and never touches the live read models.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.application import LedgerApp
from ledger.csv_cells import cell
from ledger.storage import event_log
from projections.engine.events import Handlers


class Report(Handlers):
    """Subclass me: define handlers `@handles(Order.Placed) def placed(self, event: Order.Placed)`
    etc. (`projections.engine.events.handles`) and `rows()`."""

    def rows(self) -> Iterable[dict[str, Any]]:
        raise NotImplementedError

    def handlers(self) -> dict[str, Callable[..., None]]:
        return self.bound_handlers()


@dataclass(frozen=True)
class ReplayResult:
    events_read: int
    events_handled: int
    last_position: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events_read / self.seconds if self.seconds else 0.0


def load_report(spec: str) -> type[Report]:
    """`package.module:Class` or `path/to/file.py:Class`."""
    target, _, class_name = spec.rpartition(":")
    if not target or not class_name:
        raise ValueError(f"report must be module:Class or path.py:Class, not {spec!r}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ValueError(f"no report file {path}")
        module_spec = importlib.util.spec_from_file_location(f"ledger_report_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    report = getattr(module, class_name, None)
    if not (isinstance(report, type) and issubclass(report, Report)):
        raise ValueError(f"{spec} is not a subclass of projections.engine.replay.Report")
    return report


def replay(
    app: LedgerApp,
    report: Report,
    *,
    until_position: int | None = None,
    until_time: datetime | None = None,
    batch_size: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Feed every event up to a position or a time (inclusive) to the report, in log order."""
    handlers = report.handlers()
    head = event_log.head(app)
    stop = min(head, until_position) if until_position is not None else head
    began = time.perf_counter()
    read = handled = last = 0
    decode = event_log.decoder(app)
    for notifications in event_log.pages(app, stop=stop, size=batch_size):
        for notification in notifications:
            handler = handlers.get(notification.topic)
            if handler is not None:
                event = decode(notification)
                if until_time is None or getattr(event, "timestamp") <= until_time:  # noqa: B009
                    handler(event)
                    handled += 1
        read += len(notifications)
        last = notifications[-1].id
        if progress is not None:
            progress(last, stop)
    return ReplayResult(read, handled, last, time.perf_counter() - began)


def write_csv(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """Write rows with the columns of the first row; return how many were written."""
    count = 0
    with out.open("w", newline="") as f:
        writer: csv.DictWriter[str] | None = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow({k: cell(v) for k, v in row.items()})  # no cell a spreadsheet would run
            count += 1
    return count
