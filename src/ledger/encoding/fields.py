"""Which fields of an event are its own and may leave the store decrypted.

Every encoder of events for readers outside the key's own aggregate (timelines, the audit
feed, Kafka, the event catalogue) leaves out the same secret and envelope fields, from here."""

from __future__ import annotations

from typing import Any

# Never shown outside the store: a key's sealed code and its look-up hash, a recipient
# account sealed and its look-up hash (the masked account is what readers see), a supplier's
# sealed API secret.
SECRET_FIELDS = frozenset({"sealed_code", "code_hmac", "account_sealed", "account_hmac", "secret_sealed"})
# The library's envelope: every stored event has them, readers are given them apart.
ENVELOPE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def event_data(event: object) -> dict[str, Any]:
    """An event's own fields: without the envelope (id, version, time, topic) and without secrets."""
    return {k: v for k, v in vars(event).items() if k not in SECRET_FIELDS and k not in ENVELOPE_FIELDS}
