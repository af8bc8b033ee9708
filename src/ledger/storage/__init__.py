"""Storage below the domain: the events recorder, the log read in order, positions, and the one
database layer for tables of our own (read models, API tokens, the audit tree)."""
