"""How much the runner reads and commits at a time (a module of its own, so the CLI can show the
defaults without importing the runner)."""

PAGE_SIZE = 5000  # events per read of the log; a batch (one commit) is one page or several
# Events per commit while rebuilding. Fewer, larger commits write a row changed by several events
# once instead of once per commit: on PostgreSQL 20,000 rebuilt ~1.3x faster than 5,000
# (docs/performance.md). A live runner keeps one page per commit, for a short lag.
REBUILD_BATCH_SIZE = 20_000
