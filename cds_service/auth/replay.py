"""The ``jti`` replay cache: a token is accepted once, and its jti is kept for its lifetime.

With ``IVIG_CDS_REDIS_URL`` the cache is Redis (``SET key NX EX ttl``), shared by every worker and
instance; otherwise an in-memory TTL dict, which only protects one process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

KEY_PREFIX = "ivig-cds:jti:"


class ReplayCacheUnavailable(Exception):
    """The shared cache could not be asked; the token can be neither accepted nor refused."""


def replay_key(iss: str, jti: str) -> str:
    """A bounded-length key per (issuer, jti): jtis are only unique within one issuer."""
    digest = hashlib.sha256(f"{iss}\n{jti}".encode()).hexdigest()
    return KEY_PREFIX + digest


class ReplayCache(Protocol):
    def first_use(self, key: str, ttl_s: int) -> bool:
        """Record ``key`` for ``ttl_s`` seconds; False when it was already recorded."""
        ...


class MemoryReplayCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def first_use(self, key: str, ttl_s: int) -> bool:
        now = self._clock()
        with self._lock:
            if now >= self._next_purge:
                self._expiry = {k: t for k, t in self._expiry.items() if t > now}
                self._next_purge = now + 60.0
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                return False
            self._expiry[key] = now + max(ttl_s, 1)
            return True


class RedisReplayCache:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def first_use(self, key: str, ttl_s: int) -> bool:
        try:
            return bool(self._redis.set(key, b"1", nx=True, ex=max(ttl_s, 1)))
        except redis.RedisError as error:
            raise ReplayCacheUnavailable(type(error).__name__) from None


def make_replay_cache(redis_url: str) -> ReplayCache:
    return RedisReplayCache(redis_url) if redis_url else MemoryReplayCache()
