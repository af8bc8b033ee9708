"""The read models, one module each (facts, inventory, sales, profit, journal, fraud), with the
timelines, reconciliation, risk at order time and the report queries that read them."""
