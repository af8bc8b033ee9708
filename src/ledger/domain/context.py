"""Who asked for a change, and when: stamped on every event a command produces."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import uuid4


@dataclass(frozen=True)
class Context:
    """The circumstances of one command.

    `now` is passed in rather than read from a clock so that the domain stays
    deterministic: the application layer owns the clock.
    """

    now: datetime
    actor: str = "system"
    correlation_id: str = ""
    causation_id: str = ""
    client_ip: str | None = None
    device_id: str | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Context.now must be timezone-aware")
        if not self.correlation_id:
            object.__setattr__(self, "correlation_id", uuid4().hex)

    def meta(self) -> dict[str, str]:
        """Event metadata; occurred-at is the event's own timestamp."""
        meta = {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id or self.correlation_id,
        }
        if self.client_ip:
            meta["client_ip"] = self.client_ip
        if self.device_id:
            meta["device_id"] = self.device_id
        return meta

    def at(self, now: datetime) -> Context:
        return replace(self, now=now)
