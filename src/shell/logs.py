"""Log lines without tracebacks. A traceback shows the code's insides and can carry the values a
failing call was given (a code, a secret, a query); at the default level every line a process
writes is one line, naming the exception's type only. With the debug level (`ledger serve
--log-level debug`) tracebacks are kept, for a developer's own machine."""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class NoTraceback(logging.Filter):
    """Folds a record's traceback (exception or stack) into `(TypeName)` at the end of its
    message, unless `keep`."""

    def __init__(self, keep: bool = False) -> None:
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if self.keep or not (record.exc_info or record.exc_text or record.stack_info):
            return True
        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        record.msg = f"{message} ({type(error).__name__})" if error is not None else message
        record.args = None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def quiet_thread_deaths() -> None:
    """A thread that dies on an exception logs one line (`_thread_died`), not Python's traceback."""
    threading.excepthook = _thread_died


def _thread_died(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("ledger").error("thread %s stopped on %s", name, args.exc_type.__name__)


def configure(level: int | str = logging.INFO, fmt: str = DEFAULT_FORMAT) -> None:
    """A process's logging (`logging.basicConfig`) whose lines never carry a traceback (below
    DEBUG), and a thread that dies says so in one line too."""
    logging.basicConfig(level=level, format=fmt)
    keep = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, NoTraceback) for f in handler.filters):
            handler.addFilter(NoTraceback(keep))
    if not keep:
        quiet_thread_deaths()


def uvicorn_config(level: str) -> dict[str, Any]:
    """uvicorn's own logging configuration (for `ledger serve --log-level level`), plus the root
    logger (the ledger's own lines: the writer, the runner, the sweeper) on a handler of its own,
    every handler without tracebacks below debug."""
    import uvicorn.config

    keep = level.lower() in ("debug", "trace")
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["no_traceback"] = {"()": NoTraceback, "keep": keep}
    config["formatters"]["ledger"] = {**config["formatters"]["default"], "fmt": "%(levelprefix)s %(name)s: %(message)s"}
    config["handlers"]["ledger"] = {**config["handlers"]["default"], "formatter": "ledger"}
    # The ledger's own loggers said warnings and errors before (Python's last-resort handler): still so.
    config["root"] = {"handlers": ["ledger"], "level": "DEBUG" if keep else "WARNING"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "no_traceback"]
    return config
