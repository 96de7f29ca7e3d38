"""One mapping from errors to HTTP: every error is a JSON OperationOutcome, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from cds_service.errors import CdsError, Issue

log = logging.getLogger(__name__)

_HTTP_ISSUE_CODES = {
    404: "not-found",
    405: "not-supported",
    413: "too-costly",
    415: "not-supported",
}


def operation_outcome(issues: list[Issue], code: str, severity: str = "error") -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": code,
                "diagnostics": issue.message,
                **({"expression": [issue.expression]} if issue.expression else {}),
            }
            for issue in issues
        ],
    }


def cors_headers(allow_origin: str) -> dict[str, str]:
    """CORS on every response, errors included, so browser clients (the CDS Hooks Sandbox) work."""
    return {
        "Access-Control-Allow-Origin": allow_origin,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        **({"Vary": "Origin"} if allow_origin != "*" else {}),
    }


def _respond(status: int, issues: list[Issue], code: str) -> Response:
    response = jsonify(operation_outcome(issues, code))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CdsError)
    def cds_error(error: CdsError) -> Response:
        log.info("%s %s: %s", error.status_code, type(error).__name__, error.message)
        return _respond(error.status_code, error.issues, error.issue_code)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = f"{error.name}: {error.description}" if error.description else str(error.name)
        response = _respond(status, [Issue(message)], _HTTP_ISSUE_CODES.get(status, "invalid"))
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error: %s", type(error).__name__)
        return _respond(500, [Issue("internal error; the service logged the details")], "exception")
