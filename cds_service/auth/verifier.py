"""Verify the JWT a CDS client sends (CDS Hooks 2.0 "Trusting CDS Clients"), with PyJWT.

Order of checks: the Authorization header is ``Bearer <jwt>``; the header's ``alg`` is one of the
configured asymmetric algorithms (``none`` and HS* are refused before any key is looked at),
``typ`` is JWT if present, ``kid`` is present; the (unverified) ``iss`` is a trusted issuer; the
key comes from that issuer's inline JWK Set, its ``jwks_url``, or the header's ``jku`` when the
jku is on the issuer's allowlist (a jku off the allowlist fails, and is never fetched; an allowed
jku whose kid is in the inline set needs no fetch); PyJWT checks the signature and
``iss``, ``aud``, ``exp``, ``iat`` (all required, with leeway); then ``tenant`` and, last, the
``jti`` replay cache, so that forged tokens cannot use up jtis.

A failure raises ``AuthenticationFailed`` whose message is the reason for the log. Reasons never
contain the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from sqlalchemy.engine import Engine

from cds_service.auth.issuers import SigningKey, TrustedIssuer, load_trusted_issuers
from cds_service.auth.jwks import JwksCache
from cds_service.auth.replay import (
    ReplayCache,
    ReplayCacheUnavailable,
    make_replay_cache,
    replay_key,
)
from cds_service.config import ENV_PREFIX, ConfigError, Settings

REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
MAX_TOKEN_CHARS = 16 * 1024
# Tokens are short-lived (best practice: jtis kept "no more than an hour"); a token valid for
# longer is refused, which also bounds how long the replay cache keeps a jti.
MAX_LIFETIME_S = 3600
_KEY_TYPE_FOR_ALG_PREFIX = {"ES": "EC", "RS": "RSA", "PS": "RSA"}


@dataclass(frozen=True)
class Client:
    """The authenticated CDS client of one request: its trusted-issuer entry and the token's
    ``tenant`` claim (what the order-select memory keeps tenants apart by)."""

    issuer: TrustedIssuer
    tenant: str | None = None

    @property
    def iss(self) -> str:
        return self.issuer.iss

    @property
    def fhir_servers(self) -> tuple[str, ...]:
        return self.issuer.fhir_servers

    @property
    def ehr_profile(self) -> str | None:
        return self.issuer.ehr_profile


class AuthenticationFailed(Exception):
    """The request is not authenticated; the message says why (for the log only)."""


class AuthenticationUnavailable(Exception):
    """The check could not be made (the shared replay cache is down): neither accept nor blame
    the client."""


class JwtVerifier:
    def __init__(
        self,
        issuers: dict[str, TrustedIssuer],
        algorithms: tuple[str, ...],
        leeway_s: int,
        jwks: JwksCache,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuers = issuers
        self.algorithms = tuple(a for a in algorithms if a != "none" and not a.startswith("HS"))
        self.leeway_s = leeway_s
        self.jwks = jwks
        self.replay = replay
        self.clock = clock

    def authenticate(self, authorization: str | None, audience: str) -> Client:
        """The client (trusted issuer, tenant) of the valid bearer JWT in ``authorization`` for
        ``audience``."""
        token = bearer_token(authorization)
        try:
            return self._verify(token, audience)
        except AuthenticationFailed as failure:
            raise AuthenticationFailed(scrub(str(failure), token)) from None

    def _verify(self, token: str, audience: str) -> Client:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise AuthenticationFailed(f"malformed JWT ({type(error).__name__})") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthenticationFailed(f"alg {alg!r} is not one of {', '.join(self.algorithms)}")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise AuthenticationFailed(f"typ {typ!r} is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed("the JWT header has no kid")
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthenticationFailed("the JWT has no iss")
        issuer = self.issuers.get(iss)
        if issuer is None:
            raise AuthenticationFailed(f"iss {iss!r} is not a trusted issuer")

        key = self._key(issuer, header, kid)
        key_type = _KEY_TYPE_FOR_ALG_PREFIX.get(alg[:2])
        if key.kty != key_type:
            raise AuthenticationFailed(f"kid {kid!r} is a {key.kty} key, not for {alg}")
        if key.alg is not None and key.alg != alg:
            raise AuthenticationFailed(f"kid {kid!r} is declared for {key.alg}, not {alg}")

        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.iss,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
            )
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed(f"aud does not contain {audience}") from None
        except jwt.PyJWTError as error:
            raise AuthenticationFailed(f"JWT rejected: {type(error).__name__}: {error}") from None
        except (TypeError, ValueError) as error:  # a key PyJWT cannot use for this alg
            raise AuthenticationFailed(f"JWT rejected: {type(error).__name__}") from None

        now = self.clock()
        exp = int(claims["exp"])
        if exp - now > MAX_LIFETIME_S + self.leeway_s:
            raise AuthenticationFailed(f"exp is more than {MAX_LIFETIME_S} s ahead")
        if issuer.tenants is not None and claims.get("tenant") not in issuer.tenants:
            raise AuthenticationFailed(f"tenant {claims.get('tenant')!r} is not allowed for {iss}")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise AuthenticationFailed("jti is not a non-empty string")
        ttl = int(exp + self.leeway_s - now) + 1
        try:
            first = self.replay.first_use(replay_key(iss, jti), ttl)
        except ReplayCacheUnavailable as error:
            raise AuthenticationUnavailable(f"replay cache unavailable ({error})") from None
        if not first:
            raise AuthenticationFailed(f"jti {jti!r} of {iss} was already used (replay)")
        tenant = claims.get("tenant")
        return Client(issuer, tenant if isinstance(tenant, str) and tenant else None)

    def _key(self, issuer: TrustedIssuer, header: dict[str, Any], kid: str) -> SigningKey:
        jku = header.get("jku")
        if jku is not None:
            if not isinstance(jku, str) or jku not in issuer.key_urls:
                raise AuthenticationFailed(
                    f"jku {jku!r} is not on the jku allowlist of {issuer.iss}"
                )
            pinned = issuer.jwks.get(kid) if issuer.jwks is not None else None
            key = pinned or self.jwks.key(jku, kid)  # keys configured inline need no fetch
        elif issuer.jwks is not None:
            key = issuer.jwks.get(kid)
        elif issuer.jwks_url:
            key = self.jwks.key(issuer.jwks_url, kid)
        else:
            raise AuthenticationFailed(f"no jku, and {issuer.iss} has no jwks or jwks_url")
        if key is None:
            raise AuthenticationFailed(f"no key with kid {kid!r} for {issuer.iss}")
        return key


# The schemes a refusal names; any other word could be the credential itself ("Authorization:
# s3cr3tApiKey"), so it is not quoted.
KNOWN_SCHEMES = frozenset({"basic", "digest", "negotiate", "ntlm", "dpop", "hoba", "mutual"})


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Only a known scheme is named: "Bearer<TAB><jwt>" is one "scheme", and a bare API key
        # is one word; quoting either would log a credential (issue 12).
        named = repr(scheme) if scheme.lower() in KNOWN_SCHEMES else "given"
        raise AuthenticationFailed(f"Authorization scheme {named} is not Bearer")
    token = token.strip()
    if not token or " " in token:
        raise AuthenticationFailed("the Bearer credentials are not one token")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthenticationFailed(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    return token


def scrub(reason: str, token: str) -> str:
    """Belt and braces: no part of the token (header, payload, signature) in a log line."""
    for part in {token, *token.split(".")}:
        if len(part) >= 8:
            reason = reason.replace(part, "[token]")
    return reason


def build_verifier(settings: Settings, session: Any, engine: Engine) -> JwtVerifier:
    """Start-up: parse the trusted issuers and set up key and replay caches (``ConfigError``)."""
    base = urlsplit(settings.public_base_url)
    if base.scheme not in ("https", "http") or not base.hostname or base.query or base.fragment:
        raise ConfigError(
            f"{ENV_PREFIX}PUBLIC_BASE_URL must be the http(s) URL clients call, "
            f"e.g. https://cds.example.org, not {settings.public_base_url!r}"
        )
    if settings.jwt_leeway_s < 0 or settings.jwks_refresh_min_interval_s < 0:
        raise ConfigError(
            f"{ENV_PREFIX}JWT_LEEWAY_S and JWKS_REFRESH_MIN_INTERVAL_S must not be negative"
        )
    try:
        replay = make_replay_cache(settings.redis_url, engine)
    except ValueError as error:
        raise ConfigError(f"{ENV_PREFIX}REDIS_URL: {error}") from None
    return JwtVerifier(
        issuers=load_trusted_issuers(settings.trusted_issuers),
        algorithms=settings.jwt_algorithms,
        leeway_s=settings.jwt_leeway_s,
        jwks=JwksCache(session, settings.jwks_refresh_min_interval_s),
        replay=replay,
    )
