"""The ``jti`` replay cache: a token is accepted once, and its jti is kept for its lifetime.

With ``IVIG_CDS_REDIS_URL`` the cache is Redis (``SET key NX EX ttl``), shared by every worker and
instance; otherwise the service's database (the feedback and audit store: a SQLite file or
PostgreSQL), shared by every worker and by every instance on that database. Never in a process's
memory: gunicorn runs two workers by default, and a token refused by one would pass the other.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Protocol

import redis
from sqlalchemy import Column, Float, MetaData, String, Table, delete, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds_service.feedback import create_tables

KEY_PREFIX = "ivig-cds:jti:"
PURGE_INTERVAL_S = 60.0

_metadata = MetaData()
_seen = Table(
    "jwt_jti",
    _metadata,
    Column("key", String(100), primary_key=True),  # replay_key(): a prefix and a sha256
    Column("expires_at", Float, nullable=False),  # epoch seconds: workers share no monotonic clock
)


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


class RedisReplayCache:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def first_use(self, key: str, ttl_s: int) -> bool:
        try:
            return bool(self._redis.set(key, b"1", nx=True, ex=max(ttl_s, 1)))
        except redis.RedisError as error:
            raise ReplayCacheUnavailable(type(error).__name__) from None


class DatabaseReplayCache:
    """The jti cache in the service's database: the key is a primary key, so a second insert of
    a live key fails, in one statement, whichever worker or instance made the first."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self._engine, self._clock = engine, clock
        self._next_purge = 0.0
        create_tables(_metadata, engine)

    def first_use(self, key: str, ttl_s: int) -> bool:
        now = self._clock()
        expired = _seen.c.expires_at <= now
        try:
            with self._engine.begin() as connection:
                if now >= self._next_purge:  # every expired key, now and then
                    connection.execute(delete(_seen).where(expired))
                    self._next_purge = now + PURGE_INTERVAL_S
                else:  # this key's expired entry no longer counts
                    connection.execute(delete(_seen).where(_seen.c.key == key, expired))
                connection.execute(insert(_seen).values(key=key, expires_at=now + max(ttl_s, 1)))
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as error:
            raise ReplayCacheUnavailable(type(error).__name__) from None


def make_replay_cache(redis_url: str, engine: Engine) -> ReplayCache:
    return RedisReplayCache(redis_url) if redis_url else DatabaseReplayCache(engine)
