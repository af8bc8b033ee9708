"""The application-service layer: every command enters the ledger here."""
