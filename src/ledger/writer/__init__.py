"""The one writer of a store: memory, sessions and undo, group commit, idempotent answers, and
the socket HTTP workers reach it by."""
