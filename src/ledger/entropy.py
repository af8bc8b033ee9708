"""Random bytes for nonces and new ids, drawn from the OS a block at a time.

`os.urandom` is one system call per use, and CPython lets go of the GIL around it. The
writer asked for 12 bytes per event (each AES-GCM nonce) and 16 per order id, so under
load it gave up the GIL ~11 times per purchase and waited each time for the callers'
threads to hand it back: ~20 % of its time (py-spy, `ledger bench write --in-flight 32`).
Taking them from a block read from the same source gives the same bytes' quality for
one system call per few hundred events.

A forked child starts with an empty block, so parent and child never share bytes (two
processes reusing a nonce under one key would break AES-GCM).
"""

from __future__ import annotations

import os
import threading
from uuid import UUID

BLOCK = 65536  # ~5,000 nonces per system call


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            at = self._at
            if at + n > len(self._block):
                self._block, at = os.urandom(max(BLOCK, n)), 0
            self._at = at + n
            return self._block[at:at + n]

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._block, self._at = b"", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_bytes(n: int) -> bytes:
    """`n` bytes from the operating system's CSPRNG (as `os.urandom`)."""
    return _pool.take(n)


def random_uuid() -> UUID:
    """A version-4 UUID, as `uuid.uuid4()` makes."""
    return UUID(bytes=_pool.take(16), version=4)
