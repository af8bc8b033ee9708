"""Every router the app serves."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    audit,
    books,
    catalog,
    fraud,
    inventory,
    orders,
    proofs,
    reads,
    reconciliation,
    redemptions,
    reports,
)

ROUTERS: list[APIRouter] = [orders.router, catalog.products_router, catalog.promotions_router, redemptions.router]
ROUTERS += [inventory.router, reports.router, books.router, fraud.router, audit.router, reads.router]
ROUTERS += [reconciliation.router, proofs.router]
