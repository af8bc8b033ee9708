"""The projection runner and the reservation sweeper (and the Kafka relay, when asked): one of each
per deployment."""

from __future__ import annotations

import logging
import threading

from api.services import Services
from ledger.domain.errors import DomainError
from ledger.relay import Relay
from projections.registry import build_projections
from projections.runner import Runner

log = logging.getLogger(__name__)


class Background:
    def __init__(self, services: Services, *, poll_interval: float = 0.05) -> None:
        self.services = services
        self.stop = threading.Event()
        store = services.store
        self.runner = Runner(services.ledger.app, store, lambda: build_projections(store), poll_interval=poll_interval)
        self.threads = [threading.Thread(target=self._sweep, name="ledger-sweeper", daemon=True)]
        if services.api.serve_projections:  # off when `project run --from-kafka` builds the read models
            self.threads.append(threading.Thread(target=self._project, name="ledger-projections", daemon=True))
        if services.api.serve_relay:
            self.threads.append(threading.Thread(target=self._relay, name="ledger-relay", daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.runner.close()

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
                Relay(self.services.ledger.app, self.services.settings).run_forever(self.stop)
            except Exception as error:  # supervise: a relay that dies is restarted
                log.error("kafka relay failed (%s); restarting", type(error).__name__)
                self.stop.wait(1.0)

    def _sweep(self) -> None:
        ledger = self.services.ledger
        while not self.stop.wait(self.services.api.sweep_interval_s):
            try:
                expired = ledger.expire_due(ledger.context("sweeper"))
                if expired:
                    log.info("expired %d unpaid reservations", len(expired))
            except (DomainError, OSError) as error:
                log.warning("sweeper: %s", type(error).__name__)
