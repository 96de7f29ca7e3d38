"""A real FHIR server on 127.0.0.1 that misbehaves as each test scripts it.

``FhirTestServer`` answers searches and reads over a list of resources, like a normal server, unless
a test scripts a path (relative to the base, e.g. ``"Observation"``) with a behaviour: sleep, drop
the connection, an error status, a broken body, an endless ``next`` loop, a huge Bundle, a redirect,
a trickle of bytes. Every request is counted per path, so tests can prove a URL was never called.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

BASE_PATH = "/r4"
FHIR_JSON = "application/fhir+json"

Behaviour = Callable[["Handler", "FhirTestServer"], None]


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        fhir = self.server.fhir
        parts = urlsplit(self.path)
        fhir.record(parts.path, self.path, self.headers.get("Authorization"))
        relative = parts.path.removeprefix(BASE_PATH).strip("/")
        behaviour = fhir.routes.get(relative) or fhir.routes.get(parts.path) or normal
        try:
            behaviour(self, fhir)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up, as it should

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = FHIR_JSON,
        *,
        length: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if not length:
            self.close_connection = True  # HTTP/1.0: the body ends when the connection closes

    def send_json(self, status: int, value: Any, **kwargs: Any) -> None:
        self.send_body(status, json.dumps(value).encode(), **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fhir: FhirTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-answer is a scripted outcome, not a test failure


class FhirTestServer:
    def __init__(self, resources: list[dict[str, Any]] | None = None) -> None:
        self.resources = list(resources or [])
        self.routes: dict[str, Behaviour] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.fhir = self
        self.port = self._httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base = self.origin + BASE_PATH
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def start(self) -> FhirTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # sleeping and trickling handlers end now
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> FhirTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on(self, path: str, behaviour: Behaviour) -> None:
        """Script ``path``: relative to the base (``"Observation"``) or absolute (``"/admin"``)."""
        self.routes[path] = behaviour

    def record(self, path: str, full: str, authorization: str | None) -> None:
        with self._lock:
            self.hits[path] += 1
            self.requests.append(full)
            self.authorizations.append(authorization)

    def hits_on(self, relative: str) -> int:
        return self.hits[f"{BASE_PATH}/{relative}"]

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    def searchset(self, resources: list[dict[str, Any]], next_url: str | None = None) -> Any:
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}", "resource": r}
                for r in resources
            ],
        }
        if next_url:
            bundle["link"] = [{"relation": "next", "url": next_url}]
        return bundle


def normal(handler: Handler, fhir: FhirTestServer) -> None:
    """A well-behaved server: reads by id, searches by type (everything for the one patient)."""
    parts = urlsplit(handler.path)
    relative = parts.path.removeprefix(BASE_PATH).strip("/")
    kind, _, resource_id = relative.partition("/")
    if resource_id:
        found = [r for r in fhir.resources if r["resourceType"] == kind and r["id"] == resource_id]
        if found:
            handler.send_json(200, found[0])
        else:
            handler.send_json(404, outcome("not-found", f"{relative} is not known"))
        return
    assert "patient" in parse_qs(parts.query), "every search is scoped to the patient"
    handler.send_json(200, fhir.searchset([r for r in fhir.resources if r["resourceType"] == kind]))


def outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


# Scripted behaviours: each returns a function the handler calls with itself and the server.


def sleep(seconds: float, then: Behaviour = normal) -> Behaviour:
    def behaviour(handler: Handler, fhir: FhirTestServer) -> None:
        if not fhir.stopping.wait(seconds):
            then(handler, fhir)

    return behaviour


def drop_connection() -> Behaviour:
    """Read the request, then close the socket without a byte of answer."""

    def behaviour(handler: Handler, _: FhirTestServer) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    return behaviour


def status(code: int, body: Any = None) -> Behaviour:
    def behaviour(handler: Handler, _: FhirTestServer) -> None:
        handler.send_json(code, body if body is not None else outcome("exception", f"HTTP {code}"))

    return behaviour


def raw(code: int, body: bytes, content_type: str = FHIR_JSON) -> Behaviour:
    def behaviour(handler: Handler, _: FhirTestServer) -> None:
        handler.send_body(code, body, content_type)

    return behaviour


def redirect(location: str, code: int = 302) -> Behaviour:
    def behaviour(handler: Handler, _: FhirTestServer) -> None:
        handler.send_body(code, b"", "text/plain", headers={"Location": location})

    return behaviour


def endless_next() -> Behaviour:
    """Every page links to a new page (``_page=n+1``), none ever the last."""

    def behaviour(handler: Handler, fhir: FhirTestServer) -> None:
        parts = urlsplit(handler.path)
        page = int(parse_qs(parts.query).get("_page", ["1"])[0])
        next_url = f"{fhir.origin}{parts.path}?patient=x&_page={page + 1}"
        handler.send_json(200, fhir.searchset([], next_url))

    return behaviour


def pages(*bodies: Callable[[FhirTestServer], Any]) -> Behaviour:
    """Page n (``_page=n``, the first without) answers ``bodies[n-1](server)``."""

    def behaviour(handler: Handler, fhir: FhirTestServer) -> None:
        page = int(parse_qs(urlsplit(handler.path).query).get("_page", ["1"])[0])
        handler.send_json(200, bodies[page - 1](fhir))

    return behaviour


def bundle_of(resources: list[dict[str, Any]], *, length: bool = True) -> Behaviour:
    """A valid searchset Bundle; ``length=False`` streams it with no Content-Length."""

    def behaviour(handler: Handler, fhir: FhirTestServer) -> None:
        body = json.dumps(fhir.searchset(resources)).encode()
        handler.send_body(200, body, length=length)

    return behaviour


def trickle(body: bytes, interval_s: float) -> Behaviour:
    """Headers at once, then the body one byte every ``interval_s`` (each well within a timeout)."""

    def behaviour(handler: Handler, fhir: FhirTestServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", FHIR_JSON)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for byte in body:
            if fhir.stopping.wait(interval_s):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    return behaviour


@pytest.fixture
def fhir_server() -> Iterator[FhirTestServer]:
    server = FhirTestServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def other_host() -> Iterator[FhirTestServer]:
    """A second server, standing for a host the service must never be led to."""
    server = FhirTestServer().start()
    try:
        yield server
    finally:
        server.stop()
