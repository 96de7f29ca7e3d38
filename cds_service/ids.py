"""Random identifiers: card and suggestion uuids, audit record ids, request ids.

A hook call makes about ten of them. Each ``os.urandom`` is a system call that also lets other
threads take the interpreter (it releases the GIL): with the audit and memory writers busy, the
call then waits for them, ten times per call (issue 9 measured 0.25 ms of a 3 ms call there, in
process). So the bytes come from one 4 KiB read of the OS's randomness at a time, handed out 16
at a time: the same source, as unpredictable, one system call per 256 identifiers. A forked
process starts a pool of its own, so two workers never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

POOL_BYTES = 4096


class _RandomPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._pool):
                self._pool, self._at = os.urandom(max(POOL_BYTES, size)), 0
            found = self._pool[self._at : self._at + size]
            self._at += size
            return found

    def forget(self) -> None:
        """After a fork: the child must not hand out what the parent may hand out too."""
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL.forget)


def new_uuid() -> str:
    """A random (version 4) UUID. Formatted by hand: ``str(uuid.uuid4())`` costs three times
    as much."""
    raw = bytearray(_POOL.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex_id() -> str:
    """A random UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives it."""
    return new_uuid().replace("-", "")
