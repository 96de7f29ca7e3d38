"""JWT authentication on every route (CDS Hooks 2.0 #trusting-cds-clients), when AUTH=jwt.

A ``before_request`` hook: CORS preflights (OPTIONS) pass; discovery passes when
``AUTH_OPEN_DISCOVERY`` is on; everything else needs ``Authorization: Bearer <JWT>`` whose ``aud``
is the public URL of the endpoint called (``PUBLIC_BASE_URL`` + path, not Flask's own URL). The
authenticated issuer goes on ``g.cds_client`` and limits the ``fhirServer`` a request may name.
Failure: 401, ``WWW-Authenticate: Bearer``, a generic OperationOutcome; the reason is logged on
``cds_service.auth`` without the token. The CORS ``after_request`` still runs on the 401.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, request

from cds_service.api.handlers import operation_outcome
from cds_service.auth import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    JwtVerifier,
    build_verifier,
)
from cds_service.config import Settings
from cds_service.errors import Issue
from cds_service.runtime import Runtime, make_session

log = logging.getLogger("cds_service.auth")

DISCOVERY_PATH = "/cds-services"


def install_jwt_auth(app: Flask, settings: Settings, runtime: Runtime) -> JwtVerifier:
    """Check the trusted issuers (``ConfigError`` at start-up) and guard every route."""
    verifier = build_verifier(settings, make_session(2), runtime.store.engine)
    base_url = settings.public_base_url.rstrip("/")
    open_discovery = settings.auth_open_discovery

    @app.before_request
    def authenticate() -> Response | None:
        # Preflights, and the operational probes a load balancer or Prometheus calls.
        if request.method == "OPTIONS" or request.path in ("/healthz", "/readyz", "/metrics"):
            return None
        if open_discovery and request.method == "GET" and request.path == DISCOVERY_PATH:
            return None
        try:
            g.cds_client = verifier.authenticate(
                request.headers.get("Authorization"), base_url + request.path
            )
        except AuthenticationFailed as failure:
            log.warning("401 %s %s: %s", request.method, request.path, failure)
            return _refusal(401, "authentication failed", "login")
        except AuthenticationUnavailable as failure:
            log.error("503 %s %s: %s", request.method, request.path, failure)
            return _refusal(503, "authentication is unavailable; try again", "transient")
        return None

    return verifier


def _refusal(status: int, message: str, code: str) -> Response:
    response = jsonify(operation_outcome([Issue(message)], code))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response
