"""What analysts see of people: customers and accounts by keyed pseudonyms, and no IP addresses,
devices or payment references.

A pseudonym is an HMAC of the value under a key derived for this purpose alone
(`CodeVault.pseudonym`): the same customer always has the same pseudonym, so analysts can count
repeat buyers and follow one across orders, but nothing without the key leads back to who it is.
The aggregates named by such a value (a customer's, an IP's or a device's `Holder`, an account's
`Redeemer`, a `Payment` by its reference) have ids derived without a key, so theirs are
pseudonymised as well. Finance and support, who deal with one customer, see them in clear."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from api.models_reads import AuditEvent
from ledger.vault import CodeVault
from projections.models.timeline import Timeline, TimelineEvent

PSEUDONYMOUS_ROLES = frozenset({"analyst"})
# A person's identifier: shown by its pseudonym.
PEOPLE = {"customer_id": "customer", "account_id": "account", "customer": "customer"}
# Never shown: where a buyer is, what they use, and the payment references finance reconciles by.
DROPPED = frozenset({"client_ip", "device_id", "payment_reference", "payment_references", "reference"})
# Aggregates whose id is derived, without a key, from a person's identifier or a payment reference.
NAMED_BY_PEOPLE = ("Holder", "Redeemer", "Payment")


def pseudonymous(role: str) -> bool:
    return role in PSEUDONYMOUS_ROLES


class Pseudonyms:
    def __init__(self, vault: CodeVault) -> None:
        self._vault = vault

    def of(self, kind: str, value: str) -> str:
        return f"{kind}-{self._vault.pseudonym(kind, value)[:24]}"

    def data(self, value: Any) -> Any:
        """`value` (an event's JSON-ready data, at any depth) with people pseudonymised and the rest dropped."""
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if not isinstance(value, dict):
            return value
        shown: dict[str, Any] = {}
        for key, item in value.items():
            if key in DROPPED:
                continue
            if key in PEOPLE and isinstance(item, str):
                shown[key] = self.of(PEOPLE[key], item)
            elif key == "actor" and isinstance(item, str):
                shown[key] = self.actor(item)
            else:
                shown[key] = self.data(item)
        if value.get("kind") in ("customer", "ip", "device") and isinstance(value.get("value"), str):
            # Holder.Opened: a customer by its pseudonym; an IP or a device not at all
            kind = value["kind"]
            shown.pop("value")
            if kind == "customer":
                shown["value"] = self.of("customer", value["value"])
        return shown

    def actor(self, actor: str) -> str:
        """A customer acting (`customer:<id>`) by their pseudonym; any other actor as it is."""
        role, _, who = actor.partition(":")
        return self.of("customer", who) if role == "customer" and who else actor

    def stream(self, aggregate: str, stream_id: UUID) -> UUID:
        """The aggregate's id, or a keyed one in its place for those named by a person or a payment."""
        if aggregate not in NAMED_BY_PEOPLE:
            return stream_id
        return UUID(self._vault.pseudonym("stream", str(stream_id))[:32])

    def audit_event(self, item: AuditEvent) -> AuditEvent:
        stream_id = str(self.stream(item.type.partition(".")[0], UUID(item.stream_id)))
        return item.model_copy(update={"data": self.data(item.data), "stream_id": stream_id})

    def timeline(self, found: Timeline) -> Timeline:
        """A timeline as analysts see it; the customer it names by their pseudonym."""
        events = [self._timeline_event(e) for e in found.events]
        summary = dict(found.summary)
        if isinstance(summary.get("customer"), str):
            summary["customer_pseudonym"] = self.of("customer", summary.pop("customer"))
        return replace(found, events=events, summary=summary)

    def _timeline_event(self, event: TimelineEvent) -> TimelineEvent:
        return replace(event, data=self.data(event.data), actor=self.actor(event.actor),
                       stream_id=self.stream(event.aggregate, event.stream_id))
