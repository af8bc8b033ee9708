"""The one entry point to the ledger's commands and queries."""

from __future__ import annotations

from ledger.application import build_app
from ledger.config import Settings
from ledger.domain.risk import RiskAssessor
from ledger.service.core import Clock, utc_now
from ledger.service.queries import QueryService
from ledger.service.supply import SupplyService
from ledger.vault import CodeVault


class Ledger(SupplyService, QueryService):
    """Catalog, supply, orders and queries over one event store."""

    def close(self) -> None:
        self.app.close()


def open_ledger(settings: Settings | None = None, clock: Clock = utc_now, risk: RiskAssessor | None = None) -> Ledger:
    settings = settings or Settings()
    app, master_key = build_app(settings)
    return Ledger(app, settings, CodeVault(master_key), clock=clock, risk=risk)
