"""Per-process request limits: a fixed one-minute window of counts per key."""

from __future__ import annotations

import threading
import time

MAX_KEYS = 100_000  # past this many keys, the windows of earlier minutes are dropped


class Windows:
    """Counts per key in the current minute (UTC), forgotten when the minute turns."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def count(self, key: str) -> int:
        minute = int(time.time() // 60)
        window, count = self._counts.get(key, (minute, 0))
        return count if window == minute else 0

    def add(self, key: str) -> int:
        """Count one for `key`; the count before it."""
        minute = int(time.time() // 60)
        with self._lock:
            window, count = self._counts.get(key, (minute, 0))
            if window != minute:
                count = 0
            self._counts[key] = (minute, count + 1)
            if len(self._counts) > MAX_KEYS:
                self._counts = {k: v for k, v in self._counts.items() if v[0] == minute}
        return count

    def allow(self, key: str, per_minute: int) -> bool:
        """Count one for `key`: whether it is within `per_minute`."""
        return self.add(key) < per_minute
