"""`as_of` / `as_of_time` on the read routes: answer from the live read models, or from the
read models as they stood at a past position (`projections.engine.checkpoints`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Query

from api.dates import IsoDateTime
from api.deps import MAX_POSITION, read_position
from api.problems import invalid
from api.services import Services
from projections.engine.as_of import ReadSource
from projections.engine.checkpoints import NotReady

AsOf = Annotated[int | None, Query(
    ge=0, le=MAX_POSITION,
    description="answer as the read models stood once every event up to this log position was applied; not with "
                "as_of_time")]
AsOfTime = Annotated[IsoDateTime | None, Query(
    description="answer as of the last event at or before this time (ISO 8601; UTC when no zone is given); not with "
                "as_of")]


@contextmanager
def reading(svc: Services, names: tuple[str, ...], min_position: int | None, as_of: int | None,
            as_of_time: datetime | None) -> Iterator[tuple[ReadSource, int]]:
    """The source to query and the position it reflects. Without `as_of`/`as_of_time`: the live
    read models (after waiting for `min_position`); with one of them: the nearest checkpoint of
    the read models and the events since (`projections.engine.checkpoints`: at most twice
    LEDGER_AS_OF_CHECKPOINT_EVENTS of them, else 503 while the checkpoints are being built), so
    `min_position` does not apply."""
    if as_of is not None and as_of_time is not None:
        raise invalid("as_of_time", "give as_of or as_of_time, not both")
    if as_of is None and as_of_time is None:
        yield svc, read_position(svc, names, min_position)
        return
    checkpoints = svc.checkpoints
    try:
        if as_of is not None:
            head = svc.reads.head()
            if as_of > head:
                raise invalid("as_of", f"position {as_of} is beyond the log's head ({head})")
            position = as_of
        else:
            assert as_of_time is not None
            position = checkpoints.position_at(as_of_time)
        point, _ = checkpoints.point(names, position)
    except NotReady as error:
        raise HTTPException(503, str(error), headers={"Retry-After": "5"}) from None
    try:
        yield point, point.position
    finally:
        point.close()


def entries_source(svc: Services, source: ReadSource, position: int) -> ReadSource:
    """Where to read journal entries up to `position`: a point in time keeps no entries (they
    carry their position and never change, so the live ones up to it are the entries then), so
    the live journal, once it has reached the position (503 if it does not in time)."""
    if source is not svc:
        read_position(svc, ("journal",), position)
    return svc
