"""The EHRs (CDS clients) this service trusts, parsed and checked once at start-up.

``IVIG_CDS_TRUSTED_ISSUERS`` is JSON text, or ``@/path/to/file.json``: a list of objects

    {"iss": "https://ehr.example.org",          # the JWT ``iss``, compared exactly
     "jwks_url": "https://ehr.example.org/jwks", # or "jwks": {"keys": [...]} (an inline JWK Set)
     "jku_allowlist": ["https://..."],           # ``jku`` header values the service may fetch
     "fhir_servers": ["https://fhir.example.org/r4"],  # the fhirServer values this client may send
     "tenants": ["org-1"],                       # optional: allowed ``tenant`` claims
     "ehr_profile": "epic"}                      # optional: "standard" or "epic" (card contract
                                                 # §7.8); else IVIG_CDS_EHR_PROFILE

A key source is ``jwks_url``, ``jwks`` or a non-empty ``jku_allowlist``. Key URLs must be https
(http only for a loopback host, for tests). Anything else is a ``ConfigError`` naming the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from cds_service.config import ENV_PREFIX, ConfigError

SETTING = f"{ENV_PREFIX}TRUSTED_ISSUERS"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FIELDS = frozenset(
    {"iss", "jwks_url", "jwks", "jku_allowlist", "fhir_servers", "tenants", "ehr_profile"}
)
EHR_PROFILES = ("standard", "epic")  # hooks.card_builder.PROFILES: what suggestions it can take


@dataclass(frozen=True)
class SigningKey:
    """A public key from a JWK Set: the key object for PyJWT, its ``kty`` and declared ``alg``."""

    key: Any
    kty: str
    alg: str | None


@dataclass(frozen=True, eq=False)
class TrustedIssuer:
    """One trusted CDS client: where its keys come from and what it may ask the service to do."""

    iss: str
    jwks_url: str | None = None
    jwks: dict[str, SigningKey] | None = None  # inline JWK Set, by kid
    jku_allowlist: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()
    tenants: tuple[str, ...] | None = None  # None: no tenant check
    ehr_profile: str | None = None  # None: the service's IVIG_CDS_EHR_PROFILE
    key_urls: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        # The configured jwks_url is trusted as a jku too: the operator named it.
        urls = set(self.jku_allowlist) | ({self.jwks_url} if self.jwks_url else set())
        object.__setattr__(self, "key_urls", frozenset(urls))


def is_acceptable_key_url(url: str) -> bool:
    """https, or http to a loopback host (local test servers); a host is required."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def parse_jwk_set(data: Any) -> dict[str, SigningKey]:
    """A JWK Set as signing keys by ``kid``. Keys without a kid, not for signing, or of a type
    PyJWT cannot use are skipped; raises ``ValueError`` when no usable key is left."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('a JWK Set is an object with a "keys" array')
    keys: dict[str, SigningKey] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("EC", "RSA"):
            continue  # never symmetric ("oct") keys
        if any(name in jwk for name in ("d", "p", "q")):
            continue  # a private key has no business in a JWK Set we trust
        alg = jwk.get("alg")
        if alg is not None and not isinstance(alg, str):
            continue
        try:
            key = SigningKey(PyJWK(jwk).key, jwk["kty"], alg)
        except (PyJWTError, ValueError, TypeError, KeyError):
            continue
        keys.setdefault(jwk["kid"], key)
    if not keys:
        raise ValueError("the JWK Set has no usable EC or RSA signing key with a kid")
    return keys


def _url_list(entry: dict[str, Any], name: str, where: str, *, key_url: bool) -> tuple[str, ...]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{SETTING}: {where}: {name} must be a list of URLs")
    for url in value:
        if key_url and not is_acceptable_key_url(url):
            raise ConfigError(
                f"{SETTING}: {where}: {name} entry {url!r} must be an https URL "
                "(http only for 127.0.0.1/localhost)"
            )
        if not key_url and not url.startswith(("https://", "http://")):
            raise ConfigError(f"{SETTING}: {where}: {name} entry {url!r} is not an http(s) URL")
    return tuple(value)


def _issuer(entry: Any, index: int) -> TrustedIssuer:
    where = f"issuer #{index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{SETTING}: {where} must be a JSON object")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        raise ConfigError(f"{SETTING}: {where} has no iss")
    where = f"issuer {iss!r}"
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"{SETTING}: {where}: unknown field(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_FIELDS))})"
        )
    jwks_url = entry.get("jwks_url")
    if jwks_url is not None and (not isinstance(jwks_url, str) or not jwks_url):
        raise ConfigError(f"{SETTING}: {where}: jwks_url must be a URL")
    if jwks_url and not is_acceptable_key_url(jwks_url):
        raise ConfigError(
            f"{SETTING}: {where}: jwks_url {jwks_url!r} must be an https URL "
            "(http only for 127.0.0.1/localhost)"
        )
    if jwks_url and "jwks" in entry:
        raise ConfigError(f"{SETTING}: {where}: give jwks_url or jwks, not both")
    inline: dict[str, SigningKey] | None = None
    if "jwks" in entry:
        try:
            inline = parse_jwk_set(entry["jwks"])
        except ValueError as error:
            raise ConfigError(f"{SETTING}: {where}: jwks: {error}") from None
    jku_allowlist = _url_list(entry, "jku_allowlist", where, key_url=True)
    if not (jwks_url or inline or jku_allowlist):
        raise ConfigError(
            f"{SETTING}: {where} has no key source: give jwks_url, jwks or jku_allowlist"
        )
    tenants = entry.get("tenants")
    if tenants is not None and (
        not isinstance(tenants, list) or not all(isinstance(t, str) and t for t in tenants)
    ):
        raise ConfigError(f"{SETTING}: {where}: tenants must be a list of strings")
    profile = entry.get("ehr_profile")
    if profile is not None and profile not in EHR_PROFILES:
        raise ConfigError(
            f"{SETTING}: {where}: ehr_profile must be one of {', '.join(EHR_PROFILES)}"
        )
    return TrustedIssuer(
        iss=iss,
        jwks_url=jwks_url or None,
        jwks=inline,
        jku_allowlist=jku_allowlist,
        fhir_servers=_url_list(entry, "fhir_servers", where, key_url=False),
        tenants=tuple(tenants) if tenants is not None else None,
        ehr_profile=profile,
    )


def load_trusted_issuers(text: str) -> dict[str, TrustedIssuer]:
    """Parse the setting (JSON text or ``@file``) into issuers by ``iss``."""
    source = text.strip()
    if source.startswith("@"):
        path = Path(source[1:])
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{SETTING}: cannot read {path}: {error.strerror}") from None
    try:
        entries = json.loads(source)
    except ValueError as error:
        raise ConfigError(f"{SETTING}: not valid JSON ({error})") from None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{SETTING}: expected a non-empty JSON list of issuers")
    issuers: dict[str, TrustedIssuer] = {}
    for index, entry in enumerate(entries):
        issuer = _issuer(entry, index)
        if issuer.iss in issuers:
            raise ConfigError(f"{SETTING}: issuer {issuer.iss!r} is listed twice")
        issuers[issuer.iss] = issuer
    return issuers
