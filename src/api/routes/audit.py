"""The audit trail: every event of the log as a feed paged by position, and one aggregate's stream.

Events are decoded (decrypted) and their sealed codes and code hashes are removed, at any depth."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query

from api.deps import Caller, MinPosition, ServicesDep, log_head, require
from api.models_reads import AuditEvent, AuditFeedOut, AuditStreamOut
from api.problems import NOT_FOUND
from api.routes.reads import invalid
from ledger.event_json import scrub
from ledger.service.queries import event_data
from projections import queries
from projections.events import EVENT_CLASSES

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


@router.get("/events", response_model=AuditFeedOut)
def events(
    svc: ServicesDep, caller: Auditor,
    after: Annotated[int, Query(ge=0, description="events at positions after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    event_type: Annotated[str | None, Query(alias="type", max_length=2000, pattern=TYPE_PATTERN,
                                            description="comma list such as Order.Placed,Order.Refunded")] = None,
    min_position: MinPosition = None,
) -> AuditFeedOut:
    """The complete history in log order; follow `next_after` until it is null."""
    topics: list[str] = []
    for name in (event_type.split(",") if event_type else []):
        topic = queries.event_topic(name)
        if topic is None:
            raise invalid("type", f"unknown event type {name}")
        topics.append(topic)
    head = log_head(svc, min_position)
    found = svc.reads.log_page(after, limit, stop=head, topics=topics)
    items = [to_audit(event, position) for position, event in found]
    return AuditFeedOut(position=head, events=items,
                        next_after=found[-1][0] if len(found) == limit and found[-1][0] < head else None)


@router.get("/streams/{stream_id}", response_model=AuditStreamOut, responses=NOT_FOUND)
def stream(stream_id: UUID, svc: ServicesDep, caller: Finance, min_position: MinPosition = None) -> AuditStreamOut:
    """Every event of one aggregate (order, key, batch, ...) in version order; 404 if it has none."""
    head = log_head(svc, min_position)
    found = svc.reads.stream(stream_id)
    if not found:
        raise HTTPException(404, f"no events for stream {stream_id}")
    return AuditStreamOut(position=head, stream_id=str(stream_id), events=[to_audit(e, None) for e in found])
