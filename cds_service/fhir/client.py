"""The only code that speaks HTTP to FHIR servers.

One ``requests.Session`` (injected, so tests and the app share a connection pool), JSON in
``application/fhir+json``, a timeout on every call bounded by the request's deadline, redirects
never followed, and paging followed only while the ``next`` link stays under the server's base URL.
The access token goes in the Authorization header and nowhere else: not in errors, not in logs.

What a server sends back is bounded too: the body is streamed and refused past
``max_response_bytes`` (or at once when Content-Length says so), its reading stops when the
request's deadline passes even if bytes keep trickling in, and a search stops collecting at
``max_resources`` resources or ``max_pages`` pages (the result is then marked truncated).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

import gevent
import requests
import urllib3.exceptions
from gevent import monkey

from cds_service.errors import (
    FhirAuthError,
    FhirInvalidResponse,
    FhirNotFound,
    FhirRefused,
    FhirServerError,
    FhirTimeout,
    FhirUnreachable,
)

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 1.5
_CHUNK_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_RESOURCES = 5000


class FhirResponseTooLarge(FhirInvalidResponse):
    """The body is (or announces itself as) larger than ``max_response_bytes``."""


class Deadline:
    """The time left for one hook call's FHIR work (or, a second one, for its checks; or for
    feedback waiting for its card)."""

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def spent(self) -> bool:
        return time.monotonic() >= self._ends


def normalise_base(url: str) -> str:
    return url.rstrip("/")


class _Origin(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str  # without trailing slash


def _origin(url: str, *, allow_query: bool) -> _Origin | None:
    """Scheme, host, port and path of an http(s) URL, or None when it is not one we may call.

    Refused outright: other schemes, userinfo (``user:pass@``), a fragment, a query (unless
    ``allow_query``, for ``next`` links), whitespace, control characters and backslashes (parsers
    disagree on them), and ``.``/``..`` path segments (which HTTP libraries resolve before sending).
    """
    if not isinstance(url, str) or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    if "#" in url or (not allow_query and "?" in url):
        return None
    segments = [unquote(segment) for segment in parts.path.split("/")]
    if any(segment in (".", "..") for segment in segments):
        return None
    return _Origin(
        scheme,
        parts.hostname.lower(),
        _DEFAULT_PORTS[scheme] if port is None else port,
        parts.path.rstrip("/"),
    )


RELATIVE_REFERENCE = re.compile(r"(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})")


def allowed_entry(url: str, allowed: tuple[str, ...]) -> str | None:
    """The configured base URL that ``url`` is (as ``is_allowed_server`` compares), or None:
    what per-server state is keyed by, so spellings of one server (``HTTP://X``, ``http://x/``)
    share it and its number stays that of the allowlist."""
    target = _origin(url, allow_query=False)
    if target is None:
        return None
    return next((s for s in allowed if _origin(s, allow_query=False) == target), None)


def is_allowed_server(url: str, allowed: tuple[str, ...]) -> bool:
    """True when ``url`` is one of the configured base URLs.

    Scheme, host (case-insensitive), port (443/80 when absent) and the exact base path (a trailing
    slash ignored) must all match; URLs with userinfo, a query or a fragment never match.
    """
    target = _origin(url, allow_query=False)
    if target is None:
        return False
    return any(target == _origin(server, allow_query=False) for server in allowed)


def is_under_base(url: str, base: str) -> bool:
    """True when ``url`` has the base's scheme, host and port and a path at or below its path."""
    target, root = _origin(url, allow_query=True), _origin(base, allow_query=False)
    if target is None or root is None or target[:3] != root[:3]:
        return False
    return target.path == root.path or target.path.startswith(root.path + "/")


@dataclass(frozen=True)
class SearchResult:
    resources: list[dict[str, Any]]
    truncated: bool
    why_truncated: str = ""


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in _as_list(bundle.get("link")):
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _as_list(value: Any) -> list[Any]:
    """A Bundle's ``entry`` or ``link``: a lone value (object, or garbage) as a list of one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def bundle_resources(bundle: dict[str, Any]) -> list[Any]:
    """Resources of a Bundle's entries, without search OperationOutcomes (mode ``outcome``).

    An entry that holds no resource object is passed on as it is, so the parser reports it as
    unreadable instead of it vanishing: a dropped Condition must not look like no Condition.
    """
    found: list[Any] = []
    for entry in _as_list(bundle.get("entry")):
        if not isinstance(entry, dict):
            found.append(entry)
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        found.append(entry.get("resource"))
    return found


class FhirClient:
    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session,
        token: str | None,
        timeout_s: float,
        max_pages: int,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_resources: int = DEFAULT_MAX_RESOURCES,
    ) -> None:
        self.base_url = normalise_base(base_url)
        self._session = session
        self._timeout_s = timeout_s
        self._max_pages = max_pages
        self._max_response_bytes = max_response_bytes
        self._max_resources = max_resources
        self._headers = {"Accept": "application/fhir+json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def read(self, reference: str, deadline: Deadline) -> dict[str, Any]:
        """GET ``{base}/{Type}/{id}``: only a FHIR relative reference (a resource type and an id
        of ``[A-Za-z0-9-.]``, not ``.`` or ``..``), so record text such as ``..;/`` or ``..%2F``
        never becomes a path on the server (issue 12)."""
        match = RELATIVE_REFERENCE.fullmatch(reference)
        if match is None or match["id"] in (".", ".."):
            raise FhirRefused("the reference is not a FHIR relative reference Type/id; not read")
        return self._get(f"{self.base_url}/{reference}", deadline)

    def search(self, query: str, deadline: Deadline) -> SearchResult:
        """GET ``{base}/{query}`` and every ``next`` page under the base, up to the bounds."""
        first = self._get(f"{self.base_url}/{query}", deadline)
        if first.get("resourceType") != "Bundle":
            return SearchResult([first], truncated=False)
        return self.follow_pages(first, deadline, pages_read=1)

    def follow_pages(
        self, bundle: dict[str, Any], deadline: Deadline, pages_read: int = 1
    ) -> SearchResult:
        """Collect the resources of ``bundle`` and of the pages its ``next`` links lead to.

        Stops, marking the result truncated, at ``max_pages`` pages, at a page already read, or
        at ``max_resources`` resources (the resources past the bound are dropped).
        """
        resources = bundle_resources(bundle)
        seen: set[str] = set()
        url = next_link(bundle)
        while True:
            if len(resources) > self._max_resources or (
                url and len(resources) >= self._max_resources
            ):
                return self._truncated(
                    resources, f"more than {self._max_resources} resources (the resource limit)"
                )
            if not url:
                return SearchResult(resources, truncated=False)
            url = urljoin(self.base_url + "/", url)
            if not is_under_base(url, self.base_url):
                raise FhirRefused(f"next link leaves the FHIR server base {self.base_url}")
            if url in seen:
                return self._truncated(resources, "the server's next links go round in a loop")
            if pages_read >= self._max_pages:
                return self._truncated(
                    resources, f"more pages than the paging limit ({self._max_pages})"
                )
            seen.add(url)
            page = self._get(url, deadline)
            if page.get("resourceType") != "Bundle":
                raise FhirInvalidResponse(f"a next page of {self.base_url} is not a Bundle")
            pages_read += 1
            resources.extend(bundle_resources(page))
            url = next_link(page)

    def transaction(self, bundle: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        """POST a ``transaction`` or ``batch`` Bundle to the base URL; the response Bundle.

        Statuses map to the same errors as a read. The error carries the server's
        OperationOutcome, when it sent one, as ``outcome`` (else None) and not in its message, like
        every error here: the fixture loader reports its diagnostics.
        """
        path = urlsplit(self.base_url).path or "/"
        body = self._write("POST", self.base_url, path, deadline, json.dumps(bundle).encode())
        result = _json_resource(body, path)
        if result.get("resourceType") != "Bundle":
            raise FhirInvalidResponse(f"POST {path}: the answer is not a Bundle")
        return result

    def delete(self, reference: str, deadline: Deadline) -> None:
        """DELETE ``{base}/{Type}/{id}``; statuses map to the same errors as a read (404/410:
        FhirNotFound), the error carrying the server's OperationOutcome as ``outcome``."""
        url = f"{self.base_url}/{reference}"
        path = urlsplit(url).path
        if not is_under_base(url, self.base_url) or "?" in reference:
            raise FhirRefused(f"DELETE {path}: not a resource under {self.base_url}")
        self._write("DELETE", url, path, deadline)

    def _write(
        self, method: str, url: str, path: str, deadline: Deadline, data: bytes | None = None
    ) -> bytes:
        """Send a write (never retried: it may not be idempotent); the body of a 2xx answer."""
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FhirTimeout("the time budget for FHIR requests is used up")
        timeout = min(self._timeout_s, remaining)
        headers = (
            {**self._headers, "Content-Type": "application/fhir+json"} if data else self._headers
        )
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=(min(_CONNECT_TIMEOUT_S, timeout), timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout as exc:
            raise FhirTimeout(f"{method} {path}: no answer within {timeout:.1f} s") from exc
        except requests.RequestException as exc:
            raise FhirUnreachable(f"{method} {path}: {type(exc).__name__}") from exc
        try:
            body = self._read_body(response, path, deadline)
        finally:
            response.close()
        try:
            _check_status(response.status_code, f"{method} {path}")
        except (FhirAuthError, FhirNotFound, FhirRefused, FhirServerError) as exc:
            exc.outcome = _operation_outcome(body)
            raise
        return body

    def _truncated(self, resources: list[Any], why: str) -> SearchResult:
        log.warning("fhir search at %s truncated: %s", urlsplit(self.base_url).path, why)
        return SearchResult(resources[: self._max_resources], truncated=True, why_truncated=why)

    def _send(self, url: str, path: str, timeout: float, deadline: Deadline) -> requests.Response:
        """GET once more after a dropped connection (not after a timeout): a pooled keep-alive
        connection that the server closed while idle fails on reuse though the server is fine."""
        for attempt in (1, 2):
            try:
                with _hard_deadline(deadline.remaining(), path):
                    return self._session.get(
                        url,
                        headers=self._headers,
                        timeout=(min(_CONNECT_TIMEOUT_S, timeout), timeout),
                        allow_redirects=False,
                        stream=True,
                    )
            except requests.Timeout as exc:
                raise FhirTimeout(f"{path}: no answer within {timeout:.1f} s") from exc
            except requests.ConnectionError as exc:
                timeout = min(timeout, deadline.remaining())
                if attempt == 2 or timeout <= 0:
                    raise FhirUnreachable(f"{path}: {type(exc).__name__}") from exc
                log.info("fhir GET %s: connection dropped; trying once more", path)
            except requests.RequestException as exc:
                raise FhirUnreachable(f"{path}: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, url: str, deadline: Deadline) -> dict[str, Any]:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FhirTimeout("the time budget for FHIR requests is used up")
        timeout = min(self._timeout_s, remaining)
        path = urlsplit(url).path  # logged without query: queries carry patient ids
        if not is_under_base(url, self.base_url):
            raise FhirRefused(f"{path}: not under the FHIR server base {self.base_url}")
        started = time.monotonic()
        response = self._send(url, path, timeout, deadline)
        try:
            _check_status(response.status_code, path)
            body = self._read_body(response, path, deadline)
        finally:
            response.close()
        log.debug(
            "fhir GET %s -> %s, %d bytes in %.0f ms",
            path,
            response.status_code,
            len(body),
            (time.monotonic() - started) * 1000,
        )
        return _json_resource(body, path)

    def _read_body(self, response: requests.Response, path: str, deadline: Deadline) -> bytes:
        """The body, read in chunks as they arrive, within the size bound and the deadline."""
        limit = self._max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.strip().isdigit() and int(declared) > limit:
            raise FhirResponseTooLarge(
                f"{path}: the body is larger than {limit} bytes (Content-Length {int(declared)})"
            )
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise FhirTimeout(f"{path}: the body did not arrive within the time budget")
            _shrink_read_timeout(raw, min(self._timeout_s, remaining))
            try:
                chunk = raw.read1(_CHUNK_BYTES)
            except urllib3.exceptions.ReadTimeoutError as exc:
                raise FhirTimeout(f"{path}: the body stalled past the time budget") from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise FhirUnreachable(f"{path}: {type(exc).__name__} reading the body") from exc
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise FhirResponseTooLarge(f"{path}: the body is larger than {limit} bytes")
            chunks.append(chunk)


def _hard_deadline(seconds: float, path: str) -> AbstractContextManager[object]:
    """The status line and headers within ``seconds``. A socket timeout bounds one read only, so
    a server sending a header byte a second would hold the fetch for ever; under gevent (the
    production workers) a ``gevent.Timeout`` ends it at the deadline. Without gevent (tests in
    process, gthread workers) only the per-read timeout applies."""
    if not monkey.is_module_patched("socket"):
        return contextlib.nullcontext()
    return gevent.Timeout(
        max(seconds, 0.001), FhirTimeout(f"{path}: the headers did not arrive within the budget")
    )


def _shrink_read_timeout(raw: Any, seconds: float) -> None:
    """Cap the socket's read timeout at the time left, so one stalled read cannot outlive it."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        try:
            sock.settimeout(max(seconds, 0.001))
        except OSError:
            pass


def _check_status(status: int, path: str) -> None:
    if status in (401, 403):
        raise FhirAuthError(f"{path}: HTTP {status}")
    if status in (404, 410):
        raise FhirNotFound(f"{path}: HTTP {status}")
    if 300 <= status < 400:
        raise FhirRefused(f"{path}: HTTP {status} redirect not followed")
    if status >= 400 or status < 200:
        raise FhirServerError(f"{path}: HTTP {status}")


def _json_resource(body: bytes, path: str) -> dict[str, Any]:
    try:
        resource = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FhirInvalidResponse(f"{path}: the body is not JSON") from exc
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise FhirInvalidResponse(f"{path}: the body is not a FHIR resource")
    if resource["resourceType"] == "OperationOutcome":
        raise FhirInvalidResponse(f"{path}: the server answered with an OperationOutcome")
    return resource


def _operation_outcome(body: bytes) -> dict[str, Any] | None:
    """The OperationOutcome a server sent with an error, if it sent one."""
    try:
        outcome = json.loads(body)
    except (ValueError, RecursionError):
        return None
    is_outcome = isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome"
    return outcome if is_outcome else None
