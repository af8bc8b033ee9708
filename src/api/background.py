"""The projection runner, the reservation sweeper, the fulfilment worker, the audit log's
follower and checkpoints, the read models' checkpoints for point-in-time reads, the
reconciliation job (and the Kafka relay, when asked): one of each per deployment."""

from __future__ import annotations

import logging
import threading
import time

from api.services import Services
from audit.archive import CheckpointArchive
from audit.keys import load_signer
from audit.log import AuditLog, CheckpointRefused
from ledger.domain.errors import DomainError
from ledger.fulfilment.worker import FulfilmentWorker
from projections.models.reconcile import READ_MODELS, NotAligned, reconcile

log = logging.getLogger(__name__)
# The point-in-time builder rests three times as long as it works: at most a quarter of a core,
# away from the order path it shares the interpreter with (a flash sale lost 10 % without it).
CHECKPOINT_REST = 3.0


class Background:
    def __init__(self, services: Services, *, poll_interval: float = 0.05) -> None:
        self.services = services
        self.settings = settings = services.settings
        self.stop = threading.Event()
        self.runner = services.components.runner(poll_interval=poll_interval)
        self.signer, generated = load_signer(settings)  # RefusedKey: inside the data directory, or readable by others
        if generated:
            log.warning("generated a new audit signing key in %s; keep it away from the data directory",
                        settings.signing_key_path)
        if self.signer.public_key not in services.audit_keys():
            log.warning("LEDGER_AUDIT_PUBLIC_KEYS does not pin this server's signing key (%s): its checkpoints "
                        "will not show as valid", settings.signing_key_path)
        self.archive = CheckpointArchive(settings.checkpoint_dir)
        self.audit = AuditLog(services.audit(), services.components.event_reader())
        self.threads = [
            threading.Thread(target=self._sweep, name="ledger-sweeper", daemon=True),
            threading.Thread(target=self._follow, name="ledger-audit", daemon=True),
        ]
        if settings.serve_projections:  # off when `project run --from-kafka` builds the read models
            self.threads.append(threading.Thread(target=self._project, name="ledger-projections", daemon=True))
        if settings.serve_relay:
            self.threads.append(threading.Thread(target=self._relay, name="ledger-relay", daemon=True))
        self.fulfilment = FulfilmentWorker(services.ledger, settings) if settings.serve_fulfilment else None
        if self.fulfilment is not None:
            self.fulfilment.follow(services.ledger.writer)
            self.threads.append(threading.Thread(target=self._fulfil, name="ledger-fulfilment", daemon=True))
        self.threads.append(threading.Thread(target=self._as_of_checkpoints, name="ledger-as-of", daemon=True))
        if settings.reconcile_interval_s > 0:
            self.threads.append(threading.Thread(target=self._reconcile, name="ledger-reconcile", daemon=True))
        if settings.audit_checkpoint_interval_s > 0:
            self.threads.append(threading.Thread(target=self._checkpoint, name="ledger-checkpoints", daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.runner.close()
        if self.fulfilment is not None:
            self.fulfilment.close()
        self.audit.reader.close()

    def _project(self) -> None:
        while not self.stop.is_set():
            try:
                self.runner.run_forever(self.stop)
            except Exception as error:  # supervise: a runner that dies is restarted
                log.error("projection runner failed (%s); restarting", type(error).__name__)
                self.stop.wait(1.0)

    def _relay(self) -> None:
        while not self.stop.is_set():
            try:  # a fresh relay resumes from the recorded position
                self.services.components.relay().run_forever(self.stop)
            except Exception as error:  # supervise: a relay that dies is restarted
                log.error("kafka relay failed (%s); restarting", type(error).__name__)
                self.stop.wait(1.0)

    def _fulfil(self) -> None:
        assert self.fulfilment is not None
        self.fulfilment.run_forever(self.stop)  # it supervises itself: a failing tick is tried again

    def _sweep(self) -> None:
        ledger = self.services.ledger
        while not self.stop.wait(self.settings.sweep_interval_s):
            try:
                expired = ledger.expire_due(ledger.context("sweeper"))
                if expired:
                    log.info("expired %d unpaid reservations", len(expired))
                ended = ledger.expire_validities(ledger.context("sweeper"))
                if ended:
                    log.info("ended %d keys, accesses or grants past their validity", ended)
            except (DomainError, OSError) as error:
                log.warning("sweeper: %s", type(error).__name__)

    def _follow(self) -> None:
        while not self.stop.is_set():
            try:
                self.audit.run_forever(self.stop, self.settings.audit_poll_interval_s)
            except Exception as error:  # supervise: a follower that dies is restarted
                log.error("audit log follower failed (%s); restarting", type(error).__name__)
                self.stop.wait(1.0)

    def _checkpoint(self) -> None:
        """Sign the tree head at start and every interval, once it is proven to extend the last
        checkpoint signed (kept in the checkpoint directory); else say why, and sign nothing."""
        while not self.stop.is_set():
            try:
                self.audit.checkpoint(self.signer, self.archive, self.services.audit_keys())
                self.archive.clear_refusal()
            except CheckpointRefused as refusal:
                log.error("audit checkpoint refused: %s", refusal)
                self.archive.refuse(str(refusal))  # /readyz and /metrics of every worker tell
            except Exception as error:
                log.error("audit checkpoint failed (%s)", type(error).__name__)
            self.stop.wait(self.settings.audit_checkpoint_interval_s)

    def _as_of_checkpoints(self) -> None:
        """Build the read models' checkpoints as the log grows (`projections.engine.checkpoints`)."""
        while not self.stop.is_set():
            try:
                self.services.checkpoints.build(stop=self.stop, rest=CHECKPOINT_REST)
            except Exception as error:  # supervise: tried again at the next tick
                log.error("as_of checkpoints failed (%s)", type(error).__name__)
            self.stop.wait(1.0)

    def _reconcile(self) -> None:
        """Reconcile at the read models' position whenever they moved and LEDGER_RECONCILE_INTERVAL_S
        has passed since the last run, and store the result with its position. The first run waits
        for the read models to reach the log's head as it was when the job started."""
        svc, every = self.services, self.settings.reconcile_interval_s
        last_run, start = -float("inf"), svc.reads.head()
        while not self.stop.is_set():
            try:
                reached = svc.reads.position(READ_MODELS)
                due = reached >= start and time.monotonic() - last_run >= every
                if due and reached != svc.reconciliations.position():
                    svc.reconciliations.save(reconcile(svc.history, svc))
                    last_run = time.monotonic()
            except NotAligned:
                pass  # a rebuild is being swapped in: the next tick
            except Exception as error:  # supervise: tried again at the next tick
                log.error("reconciliation failed (%s)", type(error).__name__)
                last_run = time.monotonic()
            self.stop.wait(min(every, 1.0))
