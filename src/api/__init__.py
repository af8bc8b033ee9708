"""The HTTP API: FastAPI routes over the ledger's commands and the read models."""
