"""JWK Sets fetched over HTTP: the only non-FHIR HTTP the service makes.

Only URLs an operator configured are fetched (an issuer's ``jwks_url`` or a ``jku`` on its
allowlist; the verifier checks that before calling). Each fetch: GET, 2 s timeout, no redirects,
at most ``MAX_JWKS_BYTES``. Sets are cached per URL. An unknown ``kid`` (key rotation), or a set
older than ``MAX_AGE_S``, re-fetches the set, at most once per ``min_interval_s`` whatever the
outcome, so a stream of tokens with made-up kids cannot turn the service against the key server.
A failed fetch keeps the last good set.

The HTTP session (a ``requests.Session`` built by ``cds_service.runtime.make_session``) is
passed in; requests' exceptions are ``OSError`` subclasses.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cds_service.auth.issuers import SigningKey, is_acceptable_key_url, parse_jwk_set

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 2.0
MAX_JWKS_BYTES = 64 * 1024
MAX_AGE_S = 3600.0  # a cached set is refreshed after this long, when next used


@dataclass
class _Entry:
    keys: dict[str, SigningKey]
    fetched_at: float  # last successful fetch
    refreshed_at: float | None = None  # last re-fetch, successful or not; None: not yet


class JwksCache:
    def __init__(
        self,
        session: Any,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str) -> SigningKey | None:
        """The key ``kid`` of the set at ``url``, refreshing the set (rate-limited) when the kid
        is unknown or the set is old. None when the key cannot be found."""
        with self._lock:
            entry = self._entries.get(url)
            now = self._clock()
            if entry is None:
                keys = self._fetch(url)
                entry = self._entries[url] = _Entry(keys or {}, now if keys else -MAX_AGE_S)
            elif kid not in entry.keys or now - entry.fetched_at > MAX_AGE_S:
                last = entry.refreshed_at
                if last is None or now - last >= self._min_interval_s:
                    entry.refreshed_at = now
                    keys = self._fetch(url)
                    if keys is not None:
                        entry.keys, entry.fetched_at = keys, now
            return entry.keys.get(kid)

    def _fetch(self, url: str) -> dict[str, SigningKey] | None:
        if not is_acceptable_key_url(url):  # the issuer config checked it; never fetch others
            log.warning("JWKS %s not fetched: not an https URL", url)
            return None
        try:
            response = self._session.get(
                url,
                timeout=FETCH_TIMEOUT_S,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/json, application/jwk-set+json"},
            )
            with response:
                if response.status_code != 200:
                    log.warning("JWKS %s: HTTP %s", url, response.status_code)
                    return None
                body = bytearray()
                for chunk in response.iter_content(chunk_size=8192):
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        log.warning("JWKS %s: larger than %d bytes", url, MAX_JWKS_BYTES)
                        return None
            keys = parse_jwk_set(json.loads(bytes(body)))
        except OSError as error:  # requests.RequestException and its subclasses
            log.warning("JWKS %s: fetch failed (%s)", url, type(error).__name__)
            return None
        except ValueError as error:  # not JSON, or no usable key
            log.warning("JWKS %s: not a usable JWK Set (%s)", url, error)
            return None
        log.info("JWKS %s: %d key(s) loaded", url, len(keys))
        return keys
