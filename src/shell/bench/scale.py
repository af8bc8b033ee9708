"""`ledger bench scale`: does a read cost the same on a store a hundred times larger?

Two throwaway stores in one run, a small one (`small` events, 20,000 by default) and a large one
(`large`, 2,000,000 by default; `--large 200000` for a quick look), each seeded the fast way:
card keys by bulk import (`Ledger.import_keys`, one `Key.Registered` event a key, thousands a
transaction) and about one event in twenty from purchases (place + pay, by several threads through
the writer). Before serving, each store is prepared as a long-running deployment would have it:
the read models caught up (`Runner.catch_up`), the point-in-time checkpoints built
(`Checkpoints.build`), a reconciliation stored, and the audit tree caught up; then a `ledger
serve` runs on each, side by side. Every read route and UI page (signed in as admin) is then asked
`requests` times on one store and then on the other, route by route (interleaved, so that the
machine's load drifts over both alike), and the p99 of each is compared: the goal is a large/small
ratio of at most 1.25 on every route (docs/performance.md, "Scale").
"""

from __future__ import annotations

import base64
import re
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ledger.collector import tuned_for_bulk
from ledger.config import Settings
from ledger.service.ledger import Ledger, open_ledger
from ledger.storage import event_log
from shell.bench.api import Server, free_port, ledger_serve_command, serving
from shell.bench.stores import throwaway_store

SKUS = 8
IMPORT_CHUNK = 2_000  # keys per import transaction: the same in both stores, so their events are alike in size
PURCHASE_SHARE = 20  # about one event in this many comes from a purchase
PURCHASE_THREADS = 8
GOAL = 1.25
ROLES = ("admin", "finance", "storefront", "analyst", "risk")


@dataclass(frozen=True)
class Store:
    """A seeded, prepared store and what the routes name."""

    name: str
    url: str
    description: str
    data_dir: Path
    cipher_key: str
    events: int
    order_id: str
    seconds: float


@dataclass(frozen=True)
class RouteTiming:
    """One route over every round: the medians of its p50 and p99 on each store, and the median of
    the rounds' p99 ratios (one scheduler pause moves one round's p99, not the median)."""

    route: str
    small_p99_ms: float
    large_p99_ms: float
    statuses: str
    small_p50_ms: float
    large_p50_ms: float
    ratio: float


@dataclass(frozen=True)
class ScaleResult:
    small: Store
    large: Store
    timings: list[RouteTiming]

    @property
    def worst(self) -> RouteTiming:
        return max(self.timings, key=lambda t: t.ratio)

    @property
    def met(self) -> bool:
        return all(t.ratio <= GOAL for t in self.timings)


def _seed(ledger: Ledger, events: int) -> str:
    """Fill the store to about `events` events; the id of one paid order."""
    ctx = ledger.context("bench")
    for n in range(SKUS):
        ledger.define_product(ctx, sku=f"SCALE-{n}", name=f"Scale key {n}", face_value="10.00", currency="USD",
                              price="9.00", low_stock_threshold=0)
    purchase_events = events // PURCHASE_SHARE
    run = uuid.uuid4().hex[:8]
    per_sku = max(1, (events - purchase_events - event_log.head(ledger.app)) // SKUS)
    for n in range(SKUS):
        for start in range(0, per_sku, IMPORT_CHUNK):
            codes = [(i + 1, f"S{run}-{n}-{i:08d}") for i in range(start, min(per_sku, start + IMPORT_CHUNK))]
            ledger.import_keys(ctx, sku=f"SCALE-{n}", supplier="bench", unit_cost="5.00", codes=codes)
    orders: list[str] = []

    def buy(k: int) -> None:
        customer = f"fan-{k}"
        placed = ledger.place_order(ledger.context(f"customer:{customer}"), customer_id=customer,
                                    sku=f"SCALE-{k % SKUS}", quantity=1)
        ledger.capture_payment(ledger.context(f"customer:{customer}"), placed.order_id, payment_reference=f"pay-{k}",
                               amount=str(placed.amount_due), provider="bench")
        orders.append(str(placed.order_id))

    k = 0
    with ThreadPoolExecutor(PURCHASE_THREADS) as pool:
        while event_log.head(ledger.app) < events:
            batch = max(PURCHASE_THREADS, (events - event_log.head(ledger.app)) // 10)
            list(pool.map(buy, range(k, k + batch)))
            k += batch
    return orders[0]


def _prepare(settings: Settings) -> None:
    """What a deployment that has run for a while has: read models, checkpoints, a reconciliation
    and the audit tree, all at the head."""
    from audit.log import AuditLog
    from projections.engine.as_of import History, LiveReadModels
    from projections.engine.checkpoints import Checkpoints
    from projections.engine.registry import build_projections
    from projections.models.reconcile import FOLDS, reconcile
    from projections.models.reconcile_store import ReconciliationStore
    from shell.composition import compose

    parts = compose(settings)
    try:
        with tuned_for_bulk():
            live = build_projections(parts.views)
            parts.runner(projections=live).catch_up()
            Checkpoints(parts.app, parts.views, settings.as_of_checkpoint_events).build()
            result = reconcile(History(parts.app, folds=FOLDS), LiveReadModels(parts.views, {p.name: p for p in live}))
            ReconciliationStore(parts.views).save(result)
            reader = parts.event_reader()
            try:
                AuditLog(parts.audit, reader).catch_up()
            finally:
                reader.close()
    finally:
        parts.close()


@contextmanager
def _store(settings: Settings, name: str, events: int, say: Callable[[str], None]) -> Iterator[Store]:
    with throwaway_store(settings) as (url, description), tempfile.TemporaryDirectory(prefix="ledger-scale-") as tmp:
        data_dir = Path(tmp)
        cipher_key = base64.b64encode(secrets.token_bytes(32)).decode()
        store_settings = Settings(database_url=url, data_dir=data_dir, cipher_key=cipher_key)
        began = time.perf_counter()
        ledger = open_ledger(store_settings)
        try:
            order_id = _seed(ledger, events)
            head = event_log.head(ledger.app)
        finally:
            ledger.close()
        seeded = time.perf_counter()
        say(f"{name}: {description}, seeded {head:,} events in {seeded - began:.0f} s")
        _prepare(store_settings)
        say(f"{name}: read models, checkpoints, reconciliation and audit tree prepared in "
            f"{time.perf_counter() - seeded:.0f} s")
        yield Store(name, url, description, data_dir, cipher_key, head, order_id, time.perf_counter() - began)


def _middle(store: Store) -> int:
    """A position about halfway, as far past a point-in-time checkpoint in either store (half a
    step): a read as of it folds as many events on both, and only the history's length differs."""
    step: int = Settings.model_fields["as_of_checkpoint_events"].default
    middle = store.events // 2 // step * step + step // 2
    return middle if middle <= store.events else store.events // 2  # a store smaller than a step


def _routes(store: Store) -> list[tuple[str, str]]:
    """(role, path) of every read route and UI page, over what this store holds."""
    # One aggregate's events: an order's. A stock's first page holds its imports, each naming up to
    # IMPORT_CHUNK keys, and a larger store has more of them on that page: it weighs more, whatever
    # the history's length (docs/performance.md).
    half = _middle(store)
    return [
        ("storefront", "/v1/inventory"), ("storefront", "/v1/inventory/SCALE-0"),
        ("storefront", f"/v1/inventory/SCALE-0?as_of={half}"),
        ("storefront", "/v1/inventory/SCALE-0?as_of_time=1970-01-01T00:00:00Z"),
        ("storefront", "/v1/products"), ("storefront", "/v1/products/SCALE-0"),
        ("storefront", f"/v1/orders/{store.order_id}"),
        ("finance", "/v1/reports/sales"), ("finance", "/v1/reports/profit"),
        ("finance", f"/v1/reports/sales?as_of={half}"), ("finance", f"/v1/reports/profit?as_of={half}"),
        ("finance", "/v1/ledger/trial-balance"), ("finance", f"/v1/ledger/trial-balance?as_of={half}"),
        ("finance", "/v1/ledger/accounts/revenue"), ("finance", f"/v1/ledger/accounts/revenue?as_of={half}"),
        ("finance", "/v1/reconciliation"), ("finance", "/v1/suppliers"),
        ("finance", f"/v1/audit/events?after={max(0, store.events - 100)}"),
        ("finance", f"/v1/audit/streams/{store.order_id}"),
        ("finance", "/v1/audit/checkpoints/latest"), ("finance", f"/v1/audit/proofs/inclusion?position={half}"),
        ("risk", "/v1/fraud/alerts"), ("admin", "/v1/projections"),
        ("ui", "/ui/"), ("ui", "/ui/overview/panels"), ("ui", "/ui/finance"), ("ui", f"/ui/finance?as_of={half}"),
        ("ui", "/ui/finance/accounts/revenue"), ("ui", "/ui/risk"), ("ui", "/ui/events"),
        ("ui", f"/ui/events?aggregate={store.order_id}"), ("ui", f"/ui/events/{half}"),
        ("ui", "/ui/timeline/sku/SCALE-0"),
        ("ui", f"/ui/timeline/order/{store.order_id}"),
    ]


def _sign_in(server: Server, token: str) -> httpx.Client:
    """A client signed in to the UI through its form (with whatever hidden fields it carries)."""
    client = httpx.Client(base_url=server.base_url, timeout=120)
    form = client.get("/ui/login").text
    hidden = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))
    client.post("/ui/login", data={**hidden, "token": token, "next": "/ui/"})
    return client


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _time(client: httpx.Client, path: str, headers: dict[str, str], requests: int,
          statuses: dict[int, int]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    for _ in range(max(1, requests // 20)):  # warm-up: caches and connections, not counted
        client.get(path, headers=headers)
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append(time.perf_counter() - began)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return _quantile(samples, 0.5), _quantile(samples, 0.99)


def run_bench_scale(settings: Settings, *, small: int, large: int, requests: int, rounds: int = 3,
                    say: Callable[[str], None]) -> ScaleResult:
    tokens = {role: secrets.token_urlsafe(32) for role in ROLES}
    with ExitStack() as stack:
        stores = [stack.enter_context(_store(settings, name, size, say))
                  for name, size in (("small", small), ("large", large))]
        servers, clients, uis = [], [], []
        for store in stores:
            port = free_port()
            env = {
                "LEDGER_DATABASE_URL": store.url, "LEDGER_DATA_DIR": str(store.data_dir),
                "LEDGER_CIPHER_KEY": store.cipher_key, "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
                "LEDGER_API_TOKENS": ",".join(f"{role}={token}" for role, token in tokens.items()),
                "LEDGER_RECONCILE_INTERVAL_S": "86400", "LEDGER_AUDIT_CHECKPOINT_INTERVAL_S": "0",
                "LEDGER_SERVE_FULFILMENT": "false",
                "LEDGER_UI_SECURE_COOKIE": "false",  # its clients speak plain HTTP to 127.0.0.1
            }
            server = stack.enter_context(serving(ledger_serve_command(port), env, port, store.data_dir,
                                                 f"serve-{store.name}"))
            servers.append(server)
            clients.append(stack.enter_context(httpx.Client(base_url=server.base_url, timeout=120)))
            ui = _sign_in(server, tokens["admin"])
            stack.callback(ui.close)
            uis.append(ui)
        routes = list(zip(_routes(stores[0]), _routes(stores[1]), strict=True))
        # rounds x routes x (small, large) -> (p50, p99): every round asks every route, so that the
        # machine's drift spreads over all of them; each route alternates between the stores.
        measured: list[list[list[tuple[float, float]]]] = [[] for _ in routes]
        statuses: list[dict[int, int]] = [{} for _ in routes]
        for _ in range(rounds):
            for n, ((role, small_path), (_, large_path)) in enumerate(routes):
                pair = []
                for client, ui, path in ((clients[0], uis[0], small_path), (clients[1], uis[1], large_path)):
                    headers = {} if role == "ui" else {"Authorization": f"Bearer {tokens[role]}"}
                    pair.append(_time(ui if role == "ui" else client, path, headers, requests, statuses[n]))
                measured[n].append(pair)
        timings = []
        for ((_, small_path), _), rounds_of, seen in zip(routes, measured, statuses, strict=True):
            shown = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "{id}", small_path.replace("SCALE-0", "{sku}"))
            shown = re.sub(r"(as_of|after|position)=\d+", r"\1=N", shown).replace(f"/events/{_middle(stores[0])}",
                                                                                   "/events/N")

            def median(values: list[float]) -> float:
                return statistics.median(values)

            timing = RouteTiming(
                shown, median([r[0][1] for r in rounds_of]), median([r[1][1] for r in rounds_of]),
                ", ".join(f"{c}: {k}" for c, k in sorted(seen.items())), median([r[0][0] for r in rounds_of]),
                median([r[1][0] for r in rounds_of]),
                median([r[1][1] / r[0][1] if r[0][1] else 0.0 for r in rounds_of]))
            say(f"  {timing.route}: p99 {timing.small_p99_ms:.1f} ms vs {timing.large_p99_ms:.1f} ms, "
                f"ratio {timing.ratio:.2f} (p50 {timing.small_p50_ms:.1f} vs {timing.large_p50_ms:.1f} ms; "
                f"{timing.statuses})")
            timings.append(timing)
        return ScaleResult(stores[0], stores[1], timings)
