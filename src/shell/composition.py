"""The composition root: everything a process needs, built from one `Settings`.

Every `ledger` command and the API's app factory start here. Each part is built on first
use, so a command that needs only the event store pays only for it:

- `master_key`: the store key every other key is derived from, unlocked once with the cipher
  key (LEDGER_CIPHER_KEY or DATA_DIR/cipher.key, generated there for an empty store:
  `generated_key` then says where); a key that does not open the store is refused here
  (`ledger.storage.store_key`)
- `app`: the event store (`ledger.application.LedgerApp`)
- `vault`: the card-key vault, under the master key
- `ledger`: the write path (writer and queries), with the order-time risk assessor armed
  at construction when LEDGER_FRAUD_REJECT_SCORE > 0
- `views`: the read models' store; `runner(...)` makes a projection runner over it
- `relay(...)`: the Kafka relay, when LEDGER_KAFKA_BOOTSTRAP is set
- `audit`, `event_reader()`: the audit tree's tables and a reader of the events as stored
  (neither needs the cipher key)
- `token_store`: the API tokens' table, in the events' database (`api.token_store`)

This module is the top of the stack: it imports the read models (`projections`); the
domain and the write path never import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.config import Settings

if TYPE_CHECKING:  # each loads when its part is first built: the audit commands never load the ledger
    from api.token_store import TokenStore
    from audit.rows import EventReader
    from audit.store import AuditStore
    from ledger.application import LedgerApp
    from ledger.domain.risk import RiskAssessor
    from ledger.service.ledger import Clock, Ledger
    from ledger.vault import CodeVault
    from projections.engine.base import Projection
    from projections.engine.runner import Runner
    from projections.engine.store import ViewStore
    from projections.kafka.relay import Relay


class Components:
    """One process's parts, built from one `Settings` on first use; `close()` closes those built."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock  # the ledger's; None: the system's (UTC)
        self.generated_key: Path | None = None  # where `master_key` was generated just now, if it was

    @cached_property
    def master_key(self) -> str:
        """StoreKeyError (a ValueError) when the cipher key does not open the store; ValueError /
        OSError when the key file cannot be read or written."""
        from ledger.storage.store_key import unlock_store

        unlocked = unlock_store(self.settings)
        self.generated_key = unlocked.generated
        return unlocked.store_key

    @cached_property
    def app(self) -> LedgerApp:
        from ledger.application import build_app

        app, _ = build_app(self.settings, self.master_key)
        return app

    @cached_property
    def vault(self) -> CodeVault:
        from ledger.vault import CodeVault

        return CodeVault(self.master_key)

    @cached_property
    def views(self) -> ViewStore:
        from projections.engine.store import ViewStore

        return ViewStore(self.settings)

    @cached_property
    def risk(self) -> RiskAssessor | None:
        """The fraud read model's verdict at order time, when LEDGER_FRAUD_REJECT_SCORE > 0.

        None in an HTTP worker of `ledger serve` too: its writer, and so its risk check, is
        the serving process's."""
        if self.settings.fraud_reject_score <= 0 or self.settings.writer_address:
            return None
        from projections.models.risk import FraudRiskAssessor

        return FraudRiskAssessor(self.views, self.settings.fraud_reject_score)

    @cached_property
    def ledger(self) -> Ledger:
        from ledger.service.ledger import Ledger, utc_now

        return Ledger(self.app, self.settings, self.vault, clock=self.clock or utc_now, risk=self.risk)

    def runner(
        self, names: list[str] | None = None, *, projections: Sequence[Projection] | None = None,
        batch_size: int = 5000, poll_interval: float = 0.25,
    ) -> Runner:
        """A projection runner over `views`: of the named read models (default: all), following
        version swaps; or of the given `projections` instances."""
        from projections.engine.registry import build_projections
        from projections.engine.runner import Runner

        views = self.views
        given = projections if projections is not None else lambda: build_projections(views, names)
        return Runner(self.app, views, given, batch_size=batch_size, poll_interval=poll_interval)

    def relay(self, *, batch_size: int = 2000, poll_interval: float = 0.1) -> Relay:
        """A relay of the log to Kafka, resuming from the recorded position; ValueError naming
        LEDGER_KAFKA_BOOTSTRAP when no cluster is configured."""
        from projections.kafka.connection import require_bootstrap
        from projections.kafka.relay import Relay

        require_bootstrap(self.settings)
        return Relay(self.app, self.settings, batch_size=batch_size, poll_interval=poll_interval)

    @cached_property
    def audit(self) -> AuditStore:
        from audit.store import AuditStore

        return AuditStore(self.settings)

    @cached_property
    def token_store(self) -> TokenStore:
        from api.token_store import TokenStore

        return TokenStore(self.settings)

    def event_reader(self) -> EventReader:
        """A reader of the events as stored, with a connection of its own: the caller closes it."""
        from audit.rows import EventReader

        return EventReader(self.settings)

    def close(self) -> None:
        """Close what was built, the ledger (and its writer) before the stores under it."""
        built = self.__dict__
        if "ledger" in built:
            self.ledger.close()  # closes the app too
        elif "app" in built:
            self.app.close()
        if "audit" in built:
            self.audit.close()
        if "token_store" in built:
            self.token_store.close()
        if "views" in built:
            self.views.close()


def compose(settings: Settings, clock: Clock | None = None) -> Components:
    """The process's parts, from one `Settings`: nothing is opened until it is first used."""
    return Components(settings, clock)
