"""Thin views: parse, call one runtime function, serialise (CDS Hooks 2.0 #discovery, #calling)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from cds_service.api import metrics
from cds_service.api.handlers import operation_outcome
from cds_service.api.schemas import CONTEXT_SCHEMAS, FeedbackSchema, HookRequestSchema, load
from cds_service.errors import InvalidHookRequest, Issue
from cds_service.runtime import Runtime

log = logging.getLogger(__name__)

bp = Blueprint("cds", __name__)

# Schemas are built once: instantiating one deep-copies its fields, a cost on every request.
HOOK_REQUEST = HookRequestSchema()
CONTEXTS = {hook: schema() for hook, schema in CONTEXT_SCHEMAS.items()}
FEEDBACK = FeedbackSchema()


def runtime() -> Runtime:
    return current_app.extensions["ivig_cds"]  # type: ignore[no-any-return]


def json_body() -> Any:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit and len(request.get_data()) >= limit:
        # A chunked body (no Content-Length) is cut at the limit by the WSGI input stream, which
        # then read as "not JSON" (a 400): it is too large, and says so (issue 12).
        raise RequestEntityTooLarge(f"the chunked request body reaches the {limit}-byte limit")
    body = request.get_json(force=True, silent=True)
    if body is None:
        problem = "the request body is empty" if not request.data else "the body is not JSON"
        raise InvalidHookRequest(problem, [Issue(f"{problem}; send a JSON object")])
    return body


@bp.get("/cds-services")
def discovery() -> ResponseReturnValue:
    return jsonify({"services": [s.discovery_json() for s in runtime().registry]})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> ResponseReturnValue:
    service = runtime().service(service_id)
    hook_request = load(HOOK_REQUEST, json_body())
    if hook_request["hook"] != service.hook:
        message = f"hook {hook_request['hook']!r} is not {service.hook!r}, the hook of {service.id}"
        raise InvalidHookRequest(message, [Issue(message, "hook")])
    hook_request["context"] = load(CONTEXTS[service.hook], hook_request["context"], "context")
    caller = g.get("cds_client")  # set by the JWT hook when AUTH=jwt
    response = runtime().call(service, hook_request, caller, g.get("request_id"))
    g.cds_cards = response["cards"]  # counted by cds_service.api.metrics
    return jsonify(response)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> ResponseReturnValue:
    runtime().service(service_id)
    items = load(FEEDBACK, json_body())["feedback"]
    stored = runtime().store_feedback(service_id, items)  # returns after the commit
    g.cds_feedback = stored.outcomes  # counted by cds_service.api.metrics
    return jsonify({"stored": stored.count})


# ------------------------------------------------------------------------------ operations


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: the process answers HTTP. Checks nothing else, so a slow database never gets a
    healthy worker restarted."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: the database takes a write (rolled back), the audit spool takes a file, and
    the clinical knowledge is loaded: what the service shows can be recorded."""
    issues = []
    failed = runtime().store.writable()
    if failed:
        log.warning("not ready: the database cannot be written (%s)", failed)
        issues.append(Issue("not ready: the database cannot be written"))
    if not runtime().audit.spool_writable():
        log.warning("not ready: the audit spool directory cannot be written")
        issues.append(Issue("not ready: the audit spool directory cannot be written"))
    registry = runtime().registry
    version = registry.knowledge_version
    if not version or next(iter(registry), None) is None:
        issues.append(Issue("not ready: the clinical knowledge is not loaded"))
    if issues:
        return jsonify(operation_outcome(issues, "transient")), 503
    return jsonify({"status": "ready", "knowledge_version": version})


@bp.get("/metrics")
def prometheus_metrics() -> ResponseReturnValue:
    """Prometheus text exposition of this worker's metrics (see ``cds_service.api.metrics``)."""
    return metrics.render(current_app), 200, {"Content-Type": metrics.CONTENT_TYPE}
