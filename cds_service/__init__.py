"""A CDS Hooks 2.0 framework (HTTP, protocol, FHIR access, cards) hosting the IVIG services.

``create_app`` is the composition root: it reads configuration once, loads and validates the
clinical knowledge (via ``hooks``), opens the feedback store and wires the HTTP layer.
Gunicorn serves ``cds_service:create_app()``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from cds_service.api import bp, register_error_handlers
from cds_service.api.auth_hook import install_jwt_auth
from cds_service.api.demo import install_demo_page
from cds_service.api.handlers import cors_headers
from cds_service.api.json import OrjsonProvider
from cds_service.api.metrics import install_metrics
from cds_service.audit import AuditWriter
from cds_service.config import ENV_PREFIX, ConfigError, Settings, load_settings
from cds_service.feedback import FeedbackStore, make_engine
from cds_service.ids import new_hex_id, new_uuid
from cds_service.logs import request_id
from cds_service.repeats import RepeatMemory
from cds_service.runtime import Runtime, make_session, utc_now

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from hooks import build_registry  # the services this deployment hosts

    overrides = dict(test_config or {})
    env = dict(os.environ)
    settings = load_settings(Settings, env, overrides)

    app = Flask(__name__)
    app.config.update(
        TESTING=bool(overrides.get("TESTING", False)),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
    )
    app.json = OrjsonProvider(app)  # keeps the CDS Hooks field order (no sorting)
    store = FeedbackStore(make_engine(settings.database_url))
    store.create_schema()
    repeats = RepeatMemory(store.engine, settings.repeat_window_s)  # same database: shared
    repeats.create_schema()
    app.extensions["ivig_cds"] = Runtime(
        settings=settings,
        registry=build_registry(env, overrides),
        store=store,
        audit=_audit_writer(store, settings.audit_spool_dir),
        session=overrides.get("FHIR_SESSION") or make_session(settings.fhir_max_workers),
        clock=overrides.get("CLOCK") or _clock(settings.evaluation_date),
        uuid_factory=overrides.get("UUID_FACTORY", new_uuid),
        repeats=repeats,
    )
    _add_request_id(app)  # first, so every later hook and every log line carries it
    if settings.auth == "jwt":  # CDS Hooks "Trusting CDS Clients": a signed JWT on every route
        install_jwt_auth(app, settings, app.extensions["ivig_cds"])
    app.register_blueprint(bp)
    if settings.demo_page:
        install_demo_page(app)
    register_error_handlers(app)
    _add_cors(app, settings.cors_allow_origin)
    install_metrics(app)
    return app


def _audit_writer(store: FeedbackStore, spool_dir: str) -> AuditWriter:
    try:
        # The writer calls through the store object, so a test can swap the store's engine.
        return AuditWriter(lambda records: store.store_audit(records), Path(spool_dir))
    except OSError as exc:  # refuse to start rather than answer calls it cannot audit
        raise ConfigError(
            f"{ENV_PREFIX}AUDIT_SPOOL_DIR={spool_dir}: cannot keep audit records there "
            f"({exc.strerror or type(exc).__name__})"
        ) from None


def _clock(evaluation_date: str) -> Callable[[], datetime]:
    """The real clock, or (tests and demos only) noon UTC on a fixed evaluation date."""
    if not evaluation_date:
        return utc_now
    fixed = datetime.combine(date.fromisoformat(evaluation_date), time(12), UTC)
    log.warning("evaluating every call as of %s (IVIG_CDS_EVALUATION_DATE)", fixed.date())
    return lambda: fixed


def _add_request_id(app: Flask) -> None:
    """A request id for logs and audit: the client's X-Request-ID if it is sane, else a new one."""

    @app.before_request
    def start() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else new_hex_id()
        g.request_id_token = request_id.set(g.request_id)

    @app.after_request
    def echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response

    @app.teardown_request
    def finish(_: BaseException | None) -> None:
        if "request_id_token" in g:
            request_id.reset(g.request_id_token)


def _add_cors(app: Flask, allow_origin: str) -> None:
    headers = cors_headers(allow_origin)  # also on what gunicorn refuses (api.server_errors)

    @app.after_request
    def cors(response: Response) -> Response:
        response.headers.update(headers)
        if request.method == "OPTIONS" and response.status_code == 200:
            response.status_code = 204
            response.set_data(b"")
            del response.headers["Content-Type"]
        return response
