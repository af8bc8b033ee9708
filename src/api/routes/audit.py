"""The audit trail: every event of the log as a feed paged by position, and one aggregate's stream.

Events are decoded (decrypted) and their sealed codes and code hashes are removed, at any depth."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query

from api.deps import MAX_POSITION, Caller, MinPosition, ServicesDep, log_head, require
from api.models_reads import AuditEvent, AuditFeedOut, AuditStreamOut
from api.problems import NOT_FOUND
from api.pseudonyms import Pseudonyms, pseudonymous
from api.routes.reads import invalid
from api.services import Services
from ledger.encoding.event_json import scrub
from ledger.encoding.fields import event_data
from projections.engine import read_side
from projections.engine.events import EVENT_CLASSES

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Auditor = Annotated[Caller, Depends(require("finance", "analyst"))]
Finance = Annotated[Caller, Depends(require("finance"))]
MAX_LIMIT = 1000
_TYPES = "|".join(re.escape(name) for name in sorted(EVENT_CLASSES))
TYPE_PATTERN = rf"^({_TYPES})(,({_TYPES}))*$"


def to_audit(event: Any, position: int | None) -> AuditEvent:
    data = event_data(event)
    return AuditEvent(position=position, type=type(event).__qualname__, stream_id=str(event.originator_id),
                      version=event.originator_version, timestamp=event.timestamp, data=scrub(data))


def event_topics(names: Sequence[str]) -> list[str]:
    """The stored topics of event types named `Aggregate.Event`; 422 naming `type` for an unknown one."""
    topics = []
    for name in names:
        topic = read_side.event_topic(name)
        if topic is None:
            raise invalid("type", f"unknown event type {name}")
        topics.append(topic)
    return topics


def feed_page(svc: Services, after: int, limit: int, head: int, topics: Sequence[str] = (),
              stream_id: UUID | None = None) -> tuple[list[AuditEvent], int | None]:
    """Up to `limit` events after `after` (at most `head`, only `topics` and `stream_id` if
    given), decoded and scrubbed; and the `after` of the next page, None on the last one (one
    event more is read to know). The audit feed and the UI's event browser page the log with this."""
    found = svc.reads.log_page(after, limit + 1, stop=head, topics=topics, stream_id=stream_id)
    items = [to_audit(event, position) for position, event in found[:limit]]
    return items, items[-1].position if len(found) > limit else None


@router.get("/events", response_model=AuditFeedOut)
def events(
    svc: ServicesDep, caller: Auditor,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="events at positions after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    event_type: Annotated[str | None, Query(alias="type", max_length=2000, pattern=TYPE_PATTERN,
                                            description="comma list such as Order.Placed,Order.Refunded")] = None,
    min_position: MinPosition = None,
) -> AuditFeedOut:
    """The complete history in log order; follow `next_after` until it is null. An analyst sees
    customers and accounts by keyed pseudonyms, and no IP addresses, devices or payment references."""
    topics = event_topics(event_type.split(",") if event_type else [])
    head = log_head(svc, min_position)
    items, next_after = feed_page(svc, after, limit, head, topics)
    if pseudonymous(caller.role):  # analysts: customers by keyed pseudonyms; no IPs, devices, payment references
        shown = Pseudonyms(svc.ledger.vault)
        items = [shown.audit_event(item) for item in items]
    return AuditFeedOut(position=head, events=items, next_after=next_after)


@router.get("/streams/{stream_id}", response_model=AuditStreamOut, responses=NOT_FOUND)
def stream(
    stream_id: UUID, svc: ServicesDep, caller: Finance,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION,
                                description="the aggregate's events at positions after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    min_position: MinPosition = None,
) -> AuditStreamOut:
    """One aggregate's events (order, key, batch, ...) in log order, a page at a time (follow `next_after`
    until it is null); 404 if it has none at all."""
    head = log_head(svc, min_position)
    found = svc.reads.stream_events(stream_id, after=after, stop=head, limit=limit + 1)
    if not found and (after == 0 or not svc.reads.stream_events(stream_id, after=0, stop=head, limit=1)):
        raise HTTPException(404, f"no events for stream {stream_id}")
    items = [to_audit(event, position) for position, event in found[:limit]]
    return AuditStreamOut(position=head, stream_id=str(stream_id), events=items,
                          next_after=items[-1].position if len(found) > limit else None)
