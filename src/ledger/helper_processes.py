"""Helper processes for CPU-bound work beside the main one, which end with it.

A `ProcessPoolExecutor` of spawned processes (a fresh interpreter: nothing inherited from
a process that holds connections and threads). Each runs `initializer(*initargs)` once,
and a thread that ends it as soon as its parent is gone: a parent killed with SIGKILL
cannot shut the pool down, and its helpers must not outlive it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

WATCH_EVERY_S = 0.5


def helper_pool(workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    """`workers` spawned processes, each set up by `initializer(*initargs)` (both picklable)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(os.getpid(), initializer, initargs))


def _start(parent: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """`parent`: the pid that made the pool, not `os.getppid()` here. A parent killed while this
    interpreter was still starting has already left it to another parent; asking then would watch
    that one, and the helper (which holds its own queue's pipe open) would wait forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY_S)
        os._exit(0)

    threading.Thread(target=watch, name="helper-watches-parent", daemon=True).start()
    initializer(*initargs)
