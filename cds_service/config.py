"""Typed settings, read once in the app factory.

Every field of a settings dataclass maps to an environment variable ``IVIG_CDS_<FIELD>`` and to a
test-config key ``<FIELD>`` (upper case). Order of precedence: dataclass default, environment, test
mapping. Pure code receives the resulting objects; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

ENV_PREFIX = "IVIG_CDS_"

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _parse(name: str, raw: str, kind: Any) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name}: expected a boolean, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(
                f"{ENV_PREFIX}{name}: expected a {kind.__name__}, got {raw!r}"
            ) from None
    if typing.get_origin(kind) is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def load_settings(cls: type[T], env: Mapping[str, str], overrides: Mapping[str, Any]) -> T:
    """Build ``cls`` from its defaults, ``IVIG_CDS_*`` variables in ``env``, then ``overrides``."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = field.name.upper()
        kind = hints[field.name]
        if isinstance(kind, types.UnionType):  # "X | None": parse as X
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if key in overrides:
            value = overrides[key]
            values[field.name] = tuple(value) if typing.get_origin(kind) is tuple else value
        elif ENV_PREFIX + key in env:
            values[field.name] = _parse(key, env[ENV_PREFIX + key], kind)
    settings = cls(**values)
    validate = getattr(settings, "validate", None)
    if callable(validate):
        validate()
    return settings


@dataclass(frozen=True)
class Settings:
    """Framework settings: HTTP, FHIR access, storage. Clinical thresholds live in ``hooks``."""

    allowed_fhir_servers: tuple[str, ...] = ()
    fhir_timeout_s: float = 3.0
    request_budget_s: float = 4.0
    # The checks' own time, once the data is in: a slow FHIR server that used the budget above
    # must not leave an order unchecked (the worst call measured checks in about 1 s).
    check_budget_s: float = 2.0
    fhir_max_pages: int = 10
    fhir_max_workers: int = 8
    auth: str = "off"
    database_url: str = "sqlite:///ivig-cds-feedback.sqlite3"
    # Audit records are spooled here until the database has them (a volume in a deployment).
    audit_spool_dir: str = "ivig-cds-audit-spool"
    max_request_bytes: int = 5 * 1024 * 1024
    cors_allow_origin: str = "*"
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    # JWT authentication of CDS clients (CDS Hooks 2.0 "Trusting CDS Clients").
    # trusted_issuers: JSON text, or "@/path/to/file.json": a list of
    # {"iss", "jwks_url" | "jwks", "jku_allowlist", "fhir_servers", "tenants"}.
    trusted_issuers: str = ""
    public_base_url: str = ""  # what clients call, e.g. https://cds.example.org (the JWT aud)
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_leeway_s: int = 30
    jwks_refresh_min_interval_s: float = 60.0
    auth_open_discovery: bool = False
    redis_url: str = ""  # shared jti replay cache across workers and instances
    # Bounds on what a FHIR server may send back.
    fhir_max_response_bytes: int = 20 * 1024 * 1024
    fhir_max_resources: int = 5000
    # Tests and demos only: evaluate every call as of noon UTC on this date (YYYY-MM-DD), so fixture
    # patients keep their "recent" data. Never set in production.
    evaluation_date: str = ""
    # Card contract §7.6: an order-sign card that order-select showed within this many seconds is
    # not shown again (cds_service/repeats.py); 0 turns the memory off.
    repeat_window_s: int = 3600
    # Feedback naming a card the database does not have yet waits this long for it: another
    # worker or instance issued it a moment ago, and its audit writer stores it within about
    # 20 ms (more under load). Then the feedback is refused (404).
    feedback_wait_s: float = 2.0
    # "shadow": evaluate and audit every card, answer none (go-live: docs/go-live.md).
    mode: str = "live"
    # The demo order-entry page at /demo/ (docs/demo-page.md): `make run` turns it on; never in
    # production (it serves the fixture patients, and calls the service unauthenticated).
    demo_page: bool = False

    def validate(self) -> None:
        if self.auth not in ("off", "jwt"):
            raise ConfigError(f"{ENV_PREFIX}AUTH must be 'off' or 'jwt', not {self.auth!r}")
        if self.auth == "jwt" and not (self.trusted_issuers and self.public_base_url):
            raise ConfigError(
                f"{ENV_PREFIX}AUTH=jwt needs {ENV_PREFIX}TRUSTED_ISSUERS and "
                f"{ENV_PREFIX}PUBLIC_BASE_URL"
            )
        if not set(self.jwt_algorithms) <= {
            "ES256",
            "ES384",
            "ES512",
            "RS256",
            "RS384",
            "RS512",
            "PS384",
        }:
            raise ConfigError(
                f"{ENV_PREFIX}JWT_ALGORITHMS: only asymmetric algorithms (never none or HS*)"
            )
        if self.evaluation_date:
            try:
                date.fromisoformat(self.evaluation_date)
            except ValueError:
                raise ConfigError(
                    f"{ENV_PREFIX}EVALUATION_DATE must be YYYY-MM-DD, not {self.evaluation_date!r}"
                ) from None
        if self.demo_page and self.auth == "jwt":
            raise ConfigError(
                f"{ENV_PREFIX}DEMO_PAGE cannot be used with {ENV_PREFIX}AUTH=jwt: the page calls "
                "the service without a signed JWT, so every call would be refused"
            )
        if self.mode not in ("live", "shadow"):
            raise ConfigError(f"{ENV_PREFIX}MODE must be live or shadow, not {self.mode!r}")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"{ENV_PREFIX}LOG_FORMAT must be json or text")
        for server in self.allowed_fhir_servers:
            if not server.startswith(("https://", "http://")):
                raise ConfigError(
                    f"{ENV_PREFIX}ALLOWED_FHIR_SERVERS: {server!r} is not an http(s) base URL"
                )
        if self.fhir_timeout_s <= 0 or self.request_budget_s <= 0 or self.check_budget_s <= 0:
            raise ConfigError(
                f"{ENV_PREFIX}FHIR_TIMEOUT_S, REQUEST_BUDGET_S and CHECK_BUDGET_S must be positive"
            )
        if self.feedback_wait_s < 0:
            raise ConfigError(f"{ENV_PREFIX}FEEDBACK_WAIT_S must be >= 0")
        if self.repeat_window_s < 0:
            raise ConfigError(f"{ENV_PREFIX}REPEAT_WINDOW_S must be >= 0 (0 turns it off)")
        if self.fhir_max_pages < 1 or self.fhir_max_workers < 1 or self.max_request_bytes < 1:
            raise ConfigError(
                f"{ENV_PREFIX}FHIR_MAX_PAGES, FHIR_MAX_WORKERS and MAX_REQUEST_BYTES must be >= 1"
            )
