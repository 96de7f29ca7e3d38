"""Thin views: parse, call one runtime function, serialise (CDS Hooks 2.0 #discovery, #calling)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from cds_service.api.schemas import CONTEXT_SCHEMAS, FeedbackSchema, HookRequestSchema, load
from cds_service.errors import InvalidHookRequest, Issue
from cds_service.runtime import Runtime

bp = Blueprint("cds", __name__)


def runtime() -> Runtime:
    return current_app.extensions["ivig_cds"]  # type: ignore[no-any-return]


def json_body() -> Any:
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
    hook_request = load(HookRequestSchema(), json_body())
    if hook_request["hook"] != service.hook:
        message = f"hook {hook_request['hook']!r} is not {service.hook!r}, the hook of {service.id}"
        raise InvalidHookRequest(message, [Issue(message, "hook")])
    hook_request["context"] = load(
        CONTEXT_SCHEMAS[service.hook](), hook_request["context"], "context"
    )
    caller = g.get("cds_client")  # set by the JWT hook when AUTH=jwt
    cards = runtime().call(service, hook_request, caller, g.get("request_id"))
    return jsonify({"cards": cards})


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> ResponseReturnValue:
    runtime().service(service_id)
    items = load(FeedbackSchema(), json_body())["feedback"]
    return jsonify({"stored": runtime().store.store_feedback(service_id, items)})
