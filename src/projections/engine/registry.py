"""Which read models exist, in the order the runner feeds them (facts first)."""

from __future__ import annotations

from projections.engine.base import Projection
from projections.engine.store import ViewStore
from projections.models.facts import Facts
from projections.models.fraud import Fraud
from projections.models.inventory import Inventory
from projections.models.journal import Journal
from projections.models.profit import Profit
from projections.models.sales import Sales

# Every read model, in the order the runner feeds them.
PROJECTION_NAMES = ("facts", "inventory", "fraud", "journal", "sales", "profit")
# The read models that look things up in the facts, by name.
DEPENDENT: dict[str, type[Inventory | Fraud | Journal | Sales | Profit]] = {
    "inventory": Inventory, "fraud": Fraud, "journal": Journal, "sales": Sales, "profit": Profit,
}


def build_projections(
    store: ViewStore, names: list[str] | None = None, versions: dict[str, int] | None = None
) -> list[Projection]:
    """Facts always comes first: the others look orders and keys up in it.

    `versions` picks table versions (a rebuild's fresh ones); otherwise the active ones.
    """
    v = versions or {}
    facts = Facts(store, v.get("facts"))
    available: dict[str, Projection] = {name: cls(store, facts, v.get(name)) for name, cls in DEPENDENT.items()}
    chosen = names or list(available)
    unknown = sorted(set(chosen) - set(available) - {"facts"})
    if unknown:
        raise ValueError(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(available)}")
    return [facts, *(available[n] for n in chosen if n != "facts")]
