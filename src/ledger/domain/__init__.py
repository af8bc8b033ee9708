"""The pure domain: aggregates, their events and the rules they enforce. No I/O here."""
