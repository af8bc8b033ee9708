"""The event browser: the global log paged by position, filtered by event type and aggregate,
and one event's detail (its decrypted payload without codes, its metadata, links to the
timelines it belongs to). The roles of GET /v1/audit/events; the same paging and decoding
(`api.routes.audit.feed_page`, `to_audit`, which scrubs codes, sealed codes and code hashes).

Query and path values are parsed here, not by FastAPI, so bad input gets a page naming the
field (422) instead of the API's JSON problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from api.models_reads import AuditEvent
from api.problems import invalid
from api.routes.audit import MAX_LIMIT, event_topics, feed_page
from api.ui.auth import Viewer, viewer_for
from api.ui.render import page
from projections.events import EVENT_CLASSES

router = APIRouter()
Auditor = Annotated[Viewer, Depends(viewer_for("finance", "analyst"))]
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_LIMIT = 50
MAX_TEXT = 2000
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


def related(item: AuditEvent) -> list[tuple[str, str]]:
    """(label, href) of the timelines the event's fields name: its order, batch, SKU, customer, keys."""
    data = item.data
    links = []
    own = timeline_of(item)
    if own is not None:
        links.append((f"{item.type.partition('.')[0].lower()} timeline", own))
    for field, kind in (("order_id", "order"), ("batch_id", "batch"), ("sku", "sku"), ("customer_id", "customer")):
        value = data.get(field)
        href = timeline(kind, value) if isinstance(value, str) and value else None
        if href is not None and href != own:
            links.append((f"{kind} {value}", href))
    for field, value in data.items():
        if field.endswith("key_ids") and isinstance(value, list):
            links += [(f"key {key}", timeline("key", key)) for key in value if isinstance(key, str)]
    return links


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    timeline: str | None

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.event.data.get("meta")
        return meta if isinstance(meta, dict) else {}


def _number(field: str, text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise invalid(field, f"{text[:50]!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        raise invalid(field, f"must be {low} or more" + (f" and at most {high}" if high is not None else ""))
    return value


def _uuid(field: str, text: str) -> UUID:
    try:
        return UUID(text.strip())
    except ValueError:
        raise invalid(field, f"{text[:50]!r} is not an aggregate id (a UUID)") from None


def _bad_input(request: Request, viewer: Viewer, error: RequestValidationError) -> HTMLResponse:
    """A 422 page naming the field, like the API's problem: nothing was read."""
    first = error.errors()[0]
    return page(request, "problem.html", viewer, status_code=422, title="Bad input",
                field=str(first["loc"][-1]), message=first["msg"], **BACK)


def _parsed(request: Request, viewer: Viewer, parse: Callable[[], HTMLResponse]) -> HTMLResponse:
    try:
        return parse()
    except RequestValidationError as error:
        return _bad_input(request, viewer, error)


@router.get("/events", response_class=HTMLResponse)
def events(
    request: Request, svc: ServicesDep, viewer: Auditor,
    after: str = "0", limit: str = str(DEFAULT_LIMIT),
    event_type: Annotated[str, Query(alias="type")] = "", aggregate: str = "",
) -> HTMLResponse:
    """A page of the log after position `after`, optionally of one type and one aggregate."""

    def shown() -> HTMLResponse:
        for field, text in (("type", event_type), ("aggregate", aggregate), ("after", after), ("limit", limit)):
            if len(text) > MAX_TEXT:
                raise invalid(field, f"at most {MAX_TEXT} characters")
        start = _number("after", after or "0", 0)  # an emptied form field: the default
        size = _number("limit", limit or str(DEFAULT_LIMIT), 1, MAX_LIMIT)
        names = [n.strip() for n in event_type.split(",") if n.strip()]
        topics = event_topics(names)
        stream = _uuid("aggregate", aggregate) if aggregate.strip() else None
        head = svc.reads.head()
        items, next_after = feed_page(svc, start, size, head, topics, stream)
        previous = svc.reads.previous_after(start, size, topics, stream) if start else None
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
        wanted = _number("position", position, 1)
        head = svc.reads.head()
        items, _ = feed_page(svc, wanted - 1, 1, min(wanted, head))
        if not items:
            return page(request, "problem.html", viewer, status_code=404, title="No such event", field=None,
                        message=f"There is no event at position {wanted} (the log's head is {head}).", **BACK)
        item = items[0]
        row = EventRow(item, timeline_of(item))
        payload = {k: v for k, v in item.data.items() if k != "meta"}
        return page(request, "event.html", viewer, row=row, head=head, links=related(item),
                    payload=json.dumps(payload, indent=2, ensure_ascii=False, default=str))

    return _parsed(request, viewer, shown)
