"""The app of one `ledger serve --workers N` worker process, which uvicorn imports by name.

Requests only: the serving process runs the writer, the projection runner and the sweeper once
for the whole deployment, and each worker reaches its writer through LEDGER_WRITER_ADDRESS."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.services import Services
from ledger.config import Settings
from shell.composition import compose


def worker_app() -> FastAPI:
    """uvicorn's app factory (`shell.worker:worker_app`): services built from the environment."""
    return create_app(open_services=lambda: Services.open(compose(Settings())), tune_collector=True)
