"""What gunicorn answers itself, before the application sees a request (a request line or
headers over its limits, a malformed request), as a FHIR OperationOutcome with CORS, like every
other answer of the service. gunicorn's own is HTML without CORS: a browser client (the CDS Hooks
Sandbox) cannot even read its status.

Neither the answer nor the log line quotes the request: gunicorn's messages carry the request
line or a header, which can hold a patient id in a query string or a token."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import time
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker

from cds_service.api.handlers import cors_headers, operation_outcome
from cds_service.errors import Issue

log = logging.getLogger(__name__)

_SERVER_FAULT = (500, "Internal Server Error", "exception", "internal error")
# (exception, status, reason, issue code, what the sender is told); first match wins.
_REFUSALS: tuple[tuple[type[BaseException], int, str, str, str], ...] = (
    (http.LimitRequestLine, 414, "URI Too Long", "too-long", "the request line is too long"),
    (
        http.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "too-long",
        "too many request headers, or one too large",
    ),
    (
        http.UnsupportedTransferCoding,
        501,
        "Not Implemented",
        "not-supported",
        "unsupported Transfer-Encoding",
    ),
    (http.ExpectationFailed, 417, "Expectation Failed", "not-supported", "unsupported Expect"),
    (http.ForbiddenProxyRequest, 403, "Forbidden", "forbidden", "request forbidden"),
    (ssl.SSLError, 403, "Forbidden", "security", "TLS error"),
    # A header the application sent is its fault, not the client's (gunicorn 27; not in the stubs).
    (http.InvalidResponseHeader, *_SERVER_FAULT),  # type: ignore[attr-defined]
    (http.InvalidResponseHeaderName, *_SERVER_FAULT),  # type: ignore[attr-defined]
    (http.ConfigurationProblem, *_SERVER_FAULT),
    (http.ParseException, 400, "Bad Request", "structure", "malformed HTTP request"),
)


def refusal(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, reason, issue code, diagnostics) for what gunicorn raised."""
    for kind, status, reason, code, said in _REFUSALS:
        if isinstance(exc, kind):
            detail = f"{said} ({type(exc).__name__})" if status < 500 else said
            return status, reason, code, detail
    return _SERVER_FAULT


def error_bytes(status: int, reason: str, code: str, diagnostics: str, allow_origin: str) -> bytes:
    body = json.dumps(operation_outcome([Issue(diagnostics)], code)).encode()
    headers = {
        "Content-Type": "application/json",  # as the application's own errors
        "Content-Length": str(len(body)),
        "Connection": "close",
        **cors_headers(allow_origin),
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status} {reason}\r\n{head}\r\n".encode("latin-1") + body


class OutcomeErrors:
    """Mixed into a gunicorn worker: its ``handle_error`` writes an OperationOutcome."""

    wsgi: Any  # the Flask app, loaded by the worker

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if not isinstance(exc, Exception):  # the worker stopping (GreenletExit, SystemExit)
            return
        status, reason, code, diagnostics = refusal(exc)
        ip = (addr or ("",))[0]
        if status >= 500:
            log.error("server error before the application: %s", type(exc).__name__, exc_info=exc)
        else:
            log.warning("refused a request from %s: %s %s", ip, status, type(exc).__name__)
        runtime = getattr(self.wsgi, "extensions", {}).get("ivig_cds")
        allow_origin = runtime.settings.cors_allow_origin if runtime else "*"
        answer = error_bytes(status, reason, code, diagnostics, allow_origin)
        try:
            util.write_nonblock(client, answer)
            _drain(client)
        except OSError:
            log.debug("the client left before the error was sent")


def _drain(client: Any) -> None:
    """Close gently: unread request bytes at close make the kernel send a reset, which can
    discard the answer before the client reads it (a 9,000-byte request line refused at 4,094).
    So stop writing, then read and drop what is left, for at most 1 s and 1 MiB."""
    deadline, left = time.monotonic() + 1.0, 1 << 20
    with contextlib.suppress(OSError):  # a timeout, or the client closed first
        client.shutdown(socket.SHUT_WR)
        client.settimeout(1.0)
        while left > 0 and time.monotonic() < deadline:
            chunk = client.recv(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)


class GeventOutcomeWorker(OutcomeErrors, GeventWorker):
    pass


class ThreadOutcomeWorker(OutcomeErrors, ThreadWorker):
    pass
