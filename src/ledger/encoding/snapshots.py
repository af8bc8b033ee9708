"""Snapshots sealed to their place: the AES-GCM associated data of a snapshot's ciphertext is
its aggregate id, version and topic, so a snapshot copied over another (an old `Stock` snapshot
over the newest, one aggregate's over another's) no longer opens.

A snapshot is a shortcut the events can always rebuild, and it sits outside the audit tree:
one that does not open under its own id and version (copied, moved, edited, or written before
snapshots were sealed this way) is reported in the log and skipped, and the aggregate is
rebuilt from its events; the next snapshot interval writes a sealed one."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import replace
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import EventStore, Mapper, StoredEvent

from ledger.encoding.cipher import KeptKeyAESCipher

log = logging.getLogger(__name__)
_LABEL = b"ledger/snapshot/v1\x00"
_VERSION = struct.Struct(">q")


class UnsealedSnapshot(ValueError):
    """A snapshot whose ciphertext does not open under its own aggregate id, version and topic."""


def associated_data(originator_id: UUID | str, version: int, topic: str) -> bytes:
    ident = originator_id.bytes if isinstance(originator_id, UUID) else str(originator_id).encode()
    return _LABEL + ident + _VERSION.pack(version) + topic.encode()


class SealedSnapshotMapper(Mapper[UUID]):
    """The application's mapper for events (transcoder, compressor), with the cipher applied
    here with the snapshot's place as associated data."""

    def __init__(self, plain: Mapper[UUID], cipher: KeptKeyAESCipher) -> None:
        super().__init__(plain.transcoder, plain.compressor, None)
        self.sealer = cipher

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        stored = super().to_stored_event(domain_event)
        aad = associated_data(stored.originator_id, stored.originator_version, stored.topic)
        return replace(stored, state=self.sealer.encrypt(stored.state, aad))

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        aad = associated_data(stored_event.originator_id, stored_event.originator_version, stored_event.topic)
        try:
            state = self.sealer.decrypt(stored_event.state, aad)
        except ValueError:
            raise UnsealedSnapshot(
                f"the snapshot of {stored_event.originator_id} at version {stored_event.originator_version} does not "
                "open under its own id and version (copied from another row, edited, or written unsealed)"
            ) from None
        return super().to_domain_event(replace(stored_event, state=state))


class SealedSnapshotStore(EventStore[UUID]):
    """The snapshot store: snapshots that do not open are logged and skipped, never served."""

    def get(
        self, originator_id: UUID, *, gt: int | None = None, lte: int | None = None, desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[DomainEventProtocol[UUID]]:
        for stored in self.recorder.select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit):
            try:
                yield self.mapper.to_domain_event(stored)
            except UnsealedSnapshot as error:
                log.warning("%s: not used; the aggregate is rebuilt from its events", error)
