"""The event browser: the global log paged by position, filtered by event type and aggregate,
and one event's detail (its decrypted payload without codes, its metadata, links to the
timelines it belongs to). The roles of GET /v1/audit/events; the same paging and decoding
(`api.routes.audit.feed_page`, `to_audit`, which scrubs codes, sealed codes and code hashes), and
the same pseudonyms for analysts (`api.pseudonyms`).

Query and path values are parsed here, not by FastAPI, so bad input gets a page naming the
field (422) instead of the API's JSON problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.models_reads import AuditEvent
from api.pseudonyms import NAMED_BY_PEOPLE, Pseudonyms, pseudonymous
from api.routes.audit import MAX_LIMIT, event_topics, feed_page
from api.services import Services
from api.ui import inputs
from api.ui.auth import Viewer, viewer_for
from api.ui.render import page
from projections.engine.events import EVENT_CLASSES

router = APIRouter()
Auditor = Annotated[Viewer, Depends(viewer_for("finance", "analyst"))]
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_LIMIT = 50
MAX_TYPES = 2000  # a comma list of event types
# Aggregates with a timeline page of their own, by the name their event types start with.
TIMELINES = {"Order": "order", "Key": "key", "Batch": "batch"}
SKU_AGGREGATES = ("Product", "Stock", "FlashSale")
BACK = {"back": "/ui/events", "back_title": "The event browser"}


def timeline(kind: str, ident: str) -> str:
    return f"/ui/timeline/{kind}/{quote(ident, safe='')}"


def timeline_of(item: AuditEvent) -> str | None:
    """The timeline of the event's aggregate, where its type says which kind it is."""
    aggregate = item.type.partition(".")[0]
    if aggregate in TIMELINES:
        return timeline(TIMELINES[aggregate], item.stream_id)
    sku = item.data.get("sku")
    return timeline("sku", sku) if aggregate in SKU_AGGREGATES and isinstance(sku, str) else None


def related(item: AuditEvent, customers: bool = True) -> list[tuple[str, str]]:
    """(label, href) of the timelines the event's fields name: its order, batch, SKU, customer
    (unless not `customers`: an analyst's pseudonym has no timeline), keys."""
    data = item.data
    links = []
    own = timeline_of(item)
    if own is not None:
        links.append((f"{item.type.partition('.')[0].lower()} timeline", own))
    named = (("order_id", "order"), ("batch_id", "batch"), ("sku", "sku"), ("customer_id", "customer"))
    for field, kind in named if customers else named[:3]:
        value = data.get(field)
        href = timeline(kind, value) if isinstance(value, str) and value else None
        if href is not None and href != own:
            links.append((f"{kind} {value}", href))
    for field, value in data.items():
        if field.endswith("key_ids") and isinstance(value, list):
            links += [(f"key {key}", timeline("key", key)) for key in value if isinstance(key, str)]
    return links


def _named_by_people(item: AuditEvent) -> bool:
    return item.type.partition(".")[0] in NAMED_BY_PEOPLE


def shown_to(viewer: Viewer, svc: Services, items: list[AuditEvent]) -> list[AuditEvent]:
    """The events as the viewer may see them: an analyst's with people pseudonymised (`api.pseudonyms`)."""
    if not pseudonymous(viewer.role):
        return items
    shown = Pseudonyms(svc.ledger.vault)
    return [shown.audit_event(item) for item in items]


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    timeline: str | None

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.event.data.get("meta")
        return meta if isinstance(meta, dict) else {}


def _parsed(request: Request, viewer: Viewer, parse: Callable[[], HTMLResponse]) -> HTMLResponse:
    """The page, or a page naming the bad field (nothing was read): the UI's own refusals
    (`api.ui.inputs`) and the API's shared ones (`event_topics`) alike."""
    try:
        return parse()
    except RequestValidationError as error:
        bad = inputs.named(error)
    except inputs.BadInput as error:
        bad = error
    return page(request, "problem.html", viewer, status_code=bad.status, title="Bad input", field=bad.field,
                message=bad.message, **BACK)


@router.get("/events", response_class=HTMLResponse)
def events(
    request: Request, svc: ServicesDep, viewer: Auditor,
    after: str = "0", limit: str = str(DEFAULT_LIMIT),
    event_type: Annotated[str, Query(alias="type")] = "", aggregate: str = "",
) -> HTMLResponse:
    """A page of the log after position `after`, optionally of one type and one aggregate."""

    def shown() -> HTMLResponse:
        start = inputs.number("after", after, 0) or 0  # an emptied form field: the default
        size = inputs.number("limit", limit, 1, MAX_LIMIT) or DEFAULT_LIMIT
        names = [n.strip() for n in (inputs.text("type", event_type, MAX_TYPES) or "").split(",") if n.strip()]
        topics = event_topics(names)
        stream = inputs.aggregate_id("aggregate", aggregate)
        head = svc.reads.head()
        items, next_after = feed_page(svc, start, size, head, topics, stream)
        previous = svc.reads.previous_after(start, size, topics, stream) if start else None
        if pseudonymous(viewer.role) and stream is not None and any(_named_by_people(i) for i in items):
            # An id an analyst computed from a guessed IP, device, customer or payment reference
            # finds nothing: no guess is confirmed.
            items, next_after, previous = [], None, None
        items = shown_to(viewer, svc, items)
        filters = {k: v for k, v in (("type", ",".join(names)), ("aggregate", str(stream or "")),
                                     ("limit", "" if size == DEFAULT_LIMIT else str(size))) if v}

        def url(page_after: int) -> str:
            return "/ui/events?" + urlencode({**filters, "after": page_after})

        return page(
            request, "events.html", viewer, head=head, after=start, limit=size, type_names=sorted(EVENT_CLASSES),
            chosen_types=names, aggregate=str(stream or ""), page_sizes=sorted({*PAGE_SIZES, size}),
            rows=[EventRow(item, timeline_of(item)) for item in items],
            next_url=None if next_after is None else url(next_after),
            previous_url=None if previous is None else url(previous),
        )

    return _parsed(request, viewer, shown)


@router.get("/events/{position}", response_class=HTMLResponse)
def event_detail(request: Request, svc: ServicesDep, viewer: Auditor, position: str) -> HTMLResponse:
    """One event: its payload decrypted with codes left out, its metadata, and links."""

    def shown() -> HTMLResponse:
        wanted = inputs.number("position", position, 1)
        if wanted is None:
            raise inputs.BadInput("position", "a log position is required")
        head = svc.reads.head()
        items, _ = feed_page(svc, wanted - 1, 1, min(wanted, head))
        if not items:
            return page(request, "problem.html", viewer, status_code=404, title="No such event", field=None,
                        message=f"There is no event at position {wanted} (the log's head is {head}).", **BACK)
        item = shown_to(viewer, svc, items)[0]
        row = EventRow(item, timeline_of(item))
        payload = {k: v for k, v in item.data.items() if k != "meta"}
        return page(request, "event.html", viewer, row=row, head=head,
                    links=related(item, customers=not pseudonymous(viewer.role)),
                    payload=json.dumps(payload, indent=2, ensure_ascii=False, default=str))

    return _parsed(request, viewer, shown)
