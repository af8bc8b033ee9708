"""What every route needs, built once per process: the ledger, the read models, tokens."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol

from api.fresh import FreshAnswers
from api.limits import Windows
from api.token_store import TokenStore
from api.tokens import Tokens, env_token_ids
from audit.keys import pinned_keys
from audit.rows import EventReader
from audit.store import AuditStore
from ledger.config import Settings
from ledger.service.ledger import Ledger
from ledger.storage import positions
from projections.engine.as_of import History
from projections.engine.base import Projection
from projections.engine.checkpoints import Checkpoints
from projections.engine.read_side import ReadSide
from projections.engine.registry import build_projections
from projections.engine.runner import Runner
from projections.engine.store import ViewStore
from projections.kafka.relay import Relay
from projections.models.reconcile import FOLDS
from projections.models.reconcile_store import ReconciliationStore

log = logging.getLogger(__name__)

class Parts(Protocol):
    """What the API is built over, made by the composition root (`shell.composition.Components`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def master_key(self) -> str: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def views(self) -> ViewStore: ...
    @property
    def audit(self) -> AuditStore: ...
    @property
    def token_store(self) -> TokenStore: ...
    def runner(self, *, poll_interval: float = ...) -> Runner: ...
    def relay(self) -> Relay: ...
    def event_reader(self) -> EventReader: ...
    def close(self) -> None: ...


@dataclass
class Services:
    components: Parts
    ledger: Ledger
    store: ViewStore
    tokens: Tokens
    requests: Windows = field(default_factory=Windows)  # LEDGER_RATE_LIMIT_PER_MINUTE's counts (api.deps)
    _views_lock: threading.Lock = field(default_factory=threading.Lock)
    _reads: ReadSide | None = None
    _history: History | None = None
    _checkpoints: Checkpoints | None = None
    _reconciliations: ReconciliationStore | None = None
    _fresh: FreshAnswers | None = None
    _audit_keys: list[bytes] | None = None

    @classmethod
    def open(cls, components: Parts) -> Services:
        """Over a process's parts (`shell.composition` builds them): the token table and every
        read model's tables are made here, before the first request. ValueError naming
        LEDGER_API_TOKENS when one of its tokens is malformed or weak."""
        settings = components.settings
        env_tokens = settings.token_roles()
        ledger, store = components.ledger, components.views
        tokens = Tokens(components.token_store, env_token_ids(components.master_key, env_tokens),
                        settings.auth_failures_per_minute)
        positions.ensure_stream_index(ledger.app)  # one aggregate's events by position: the audit streams
        # Tables exist before the first read, even if the runner has not started yet.
        for projection in build_projections(store):
            with store.transaction() as cursor:
                projection.create_tables(cursor)
        return cls(components, ledger, store, tokens)

    @property
    def settings(self) -> Settings:
        return self.components.settings

    # ---- read models ----

    @property
    def fresh(self) -> FreshAnswers:
        """This process's kept answers of hot live reads (`api.fresh`)."""
        if self._fresh is None:
            self._fresh = FreshAnswers(self.settings.live_read_max_age_ms / 1000)
        return self._fresh

    @property
    def reads(self) -> ReadSide:
        """The read side's seam (`projections.engine.read_side`): versions, the log's head, lag, queries."""
        with self._views_lock:
            if self._reads is None:
                self._reads = ReadSide(self.ledger.app, self.store, refresh_s=1.0)
            return self._reads

    def view(self, name: str) -> Projection:
        """The read model at its active version. Every read model's swap is followed within a
        second, with one query for all versions rather than one per read."""
        return self.reads.view(name)

    @property
    def history(self) -> History:
        """The log as this process has read it, for the reconciliation job (built on first use)."""
        with self._views_lock:
            if self._history is None:
                self._history = History(self.ledger.app, self.settings.as_of_cached_events, folds=FOLDS)
            return self._history

    @property
    def checkpoints(self) -> Checkpoints:
        """The read models' checkpoints that point-in-time reads start from (`projections.engine.checkpoints`)."""
        with self._views_lock:
            if self._checkpoints is None:
                self._checkpoints = Checkpoints(self.ledger.app, self.store, self.settings.as_of_checkpoint_events)
            return self._checkpoints

    @property
    def reconciliations(self) -> ReconciliationStore:
        """The last reconciliation the background job stored (`projections.models.reconcile_store`)."""
        with self._views_lock:
            if self._reconciliations is None:
                self._reconciliations = ReconciliationStore(self.store)
            return self._reconciliations

    def wait_for(self, names: tuple[str, ...], position: int) -> int | None:
        """Poll (up to LEDGER_READ_WAIT_S) until the read models reach `position`; their position,
        or None on timeout."""
        return self.reads.wait_for(names, position, self.settings.read_wait_s)

    # ---- the audit tree ----

    def audit(self) -> AuditStore:
        """The Merkle tree's tables, in the events' database (opened on first use)."""
        with self._views_lock:
            return self.components.audit

    def audit_keys(self) -> list[bytes]:
        """The pinned public keys a checkpoint must be signed by (audit.keys.pinned_keys); never
        the key a checkpoint names itself."""
        if self._audit_keys is None:
            self._audit_keys = pinned_keys(self.settings)
        return self._audit_keys

    def close(self) -> None:
        self.components.close()
