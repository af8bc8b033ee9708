"""ledger: an event-sourced order and entitlement ledger for digital goods."""
