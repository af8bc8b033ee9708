"""`ledger bench codec`: encode and decode cost per event of the ledger's transcoder against the
library's JSON transcoder, on the same events in the same run.

The events come from a throwaway SQLite ledger driven through its public commands (products, key
imports, orders, payments, expiries), so the mix is the one a store really holds. Each side is
timed several times over the whole set in CPU time of this process, and the best run counts
(the machine is shared).
"""

from __future__ import annotations

import base64
import gc
import random
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent, Transcoder

from ledger.config import Settings
from ledger.encoding.transcoding import LedgerTranscoder
from ledger.service.ledger import Ledger, open_ledger
from ledger.storage import event_log


@dataclass(frozen=True)
class Timing:
    """Best seconds per event of the library's JSON and of the ledger's transcoder."""

    what: str
    json_s: float
    ledger_s: float

    @property
    def speedup(self) -> float:
        return self.json_s / self.ledger_s


@dataclass(frozen=True)
class CodecBench:
    events: int
    json_bytes: float
    ledger_bytes: float
    timings: list[Timing]


def make_events(ledger: Ledger, purchases: int, rng: random.Random) -> None:
    now = [datetime(2026, 1, 5, tzinfo=UTC)]
    ledger.clock = lambda: now[0]
    admin = ledger.context("bench")
    skus = [f"CODEC-{n}" for n in range(4)]
    for n, sku in enumerate(skus):
        ledger.define_product(admin, sku=sku, name=sku, face_value="10", currency="EUR", price=f"{7 + n}.50")
        ledger.import_keys(admin, sku=sku, supplier="acme", unit_cost=f"{3 + n}.25",
                           codes=[(i + 1, f"{sku}-{i:07d}") for i in range(purchases)])
    with ledger.batch():
        for n in range(purchases):
            now[0] += timedelta(seconds=rng.randint(1, 60))
            ctx = ledger.context("storefront")
            placed = ledger.place_order(ctx, customer_id=f"c{n}", sku=rng.choice(skus), quantity=rng.randint(1, 2))
            if rng.random() < 0.8:
                ledger.capture_payment(ctx, placed.order_id, payment_reference=f"pay-{n}", amount=placed.amount_due,
                                       provider="bench")
    now[0] += timedelta(days=1)
    ledger.expire_due(ledger.context("sweeper"))


def _best_pair(runs: tuple[Callable[[], object], Callable[[], object]], repeats: int, count: int) -> list[float]:
    """Best CPU seconds (of this process: a shared machine's other load does not count) per item
    of each run, the two alternating; garbage collection held off while timing."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for side, run in enumerate(runs):
            gc.collect()
            gc.disable()
            try:
                began = time.process_time()
                run()
                best[side] = min(best[side], time.process_time() - began)
            finally:
                gc.enable()
    return [b / count for b in best]


def _library_json(ledger: Ledger) -> Transcoder:
    transcoder = JSONTranscoder()
    ledger.app.register_transcodings(transcoder)
    return transcoder


def bench_codec(purchases: int = 1500, repeats: int = 5) -> CodecBench:
    with tempfile.TemporaryDirectory(prefix="ledger-codec-") as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'codec.sqlite'}", data_dir=Path(tmp),
                            cipher_key=base64.b64encode(secrets.token_bytes(32)).decode())
        ledger = open_ledger(settings)
        try:
            make_events(ledger, purchases, random.Random(7))
            app = ledger.app
            events: list[DomainEventProtocol[Any]] = [
                app.mapper.to_domain_event(n) for n in event_log.notifications(app)
            ]
            json_side = _library_json(ledger)
            ledger_side = app.mapper.transcoder
            assert isinstance(ledger_side, LedgerTranscoder)
            cipher = app.mapper.cipher
            mappers: tuple[Mapper[Any], ...] = tuple(Mapper(side, cipher=cipher) for side in (json_side, ledger_side))
        finally:
            ledger.close()
    states = [_state(e) for e in events]
    encoded = [[t.encode(s) for s in states] for t in (json_side, ledger_side)]
    if [ledger_side.decode(b) for b in encoded[1]] != states:
        raise AssertionError("the ledger's transcoder did not give back the states it encoded")
    stored: list[list[StoredEvent]] = [[m.to_stored_event(e) for e in events] for m in mappers]
    n = len(events)

    def pair(what: str, timed: Callable[[int], Callable[[], object]]) -> Timing:
        json_s, ledger_s = _best_pair((timed(0), timed(1)), repeats, n)
        return Timing(what, json_s, ledger_s)

    sides = (json_side, ledger_side)
    timings = [
        pair("encode (transcoder)", lambda i: lambda: [sides[i].encode(s) for s in states]),
        pair("decode (transcoder)", lambda i: lambda: [sides[i].decode(b) for b in encoded[i]]),
        pair("encode (event to stored, AES-GCM)", lambda i: lambda: [mappers[i].to_stored_event(e) for e in events]),
        pair("decode (stored to event, AES-GCM)", lambda i: lambda: [mappers[i].to_domain_event(s) for s in stored[i]]),
    ]
    return CodecBench(n, _mean_len(encoded[0]), _mean_len(encoded[1]), timings)


def _state(event: DomainEventProtocol[Any]) -> dict[str, Any]:
    """What the mapper hands the transcoder: the event's attributes less id and version."""
    state = dict(vars(event))
    del state["originator_id"], state["originator_version"]
    return state


def _mean_len(payloads: Sequence[bytes]) -> float:
    return sum(map(len, payloads)) / max(1, len(payloads))
