"""Rebuild read models from zero into fresh tables while the old ones keep serving,
then swap to the new versions in one transaction."""

from __future__ import annotations

from ledger.application import LedgerApp
from ledger.collector import tuned_for_bulk
from projections.engine.registry import build_projections
from projections.engine.runner import Progress, Runner
from projections.engine.sizes import REBUILD_BATCH_SIZE
from projections.engine.store import ViewStore


def rebuild(
    app: LedgerApp,
    store: ViewStore,
    names: list[str] | None = None,
    *,
    progress: Progress | None = None,
    batch_size: int = REBUILD_BATCH_SIZE,
) -> dict[str, int]:
    """Rebuild `names` (all when None) and make them active; return name -> new version.

    Rebuilding everything rebuilds the facts too, and the new read models look orders
    and keys up in the new facts. A single read model reuses the live facts, read only,
    and stops where the live facts stand, so that every lookup finds its row.
    """
    everything = names is None or "facts" in names
    live = build_projections(store, None if everything else names)
    versions = {p.name: p.version + 1 for p in live if everything or p.name != "facts"}
    fresh = build_projections(store, None if everything else names, versions=versions)
    building = [p for p in fresh if p.name in versions]
    with store.transaction() as cursor:
        for projection in building:
            projection.drop_tables(cursor)  # leftovers of an interrupted rebuild
    runner = Runner(app, store, building, batch_size=batch_size)
    until = runner.head() if everything else store.position(live[0].tracking_name)
    try:
        with tuned_for_bulk():
            runner.catch_up(until=until, progress=progress)
    finally:
        runner.close()
    with store.transaction() as cursor:
        for projection in building:
            store.set_active_version(cursor, projection.name, projection.version)
            # Two versions back is served by nobody: the live runner moves from the one just replaced.
            if projection.version > 2:
                projection.drop_tables(cursor, projection.version - 2)
    return versions
