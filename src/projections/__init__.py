"""Read models derived from the ledger's events, updated exactly once, rebuildable from zero."""
