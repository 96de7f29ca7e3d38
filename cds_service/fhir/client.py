"""The only code that speaks HTTP to FHIR servers.

One ``requests.Session`` (injected, so tests and the app share a connection pool), JSON in
``application/fhir+json``, a timeout on every call bounded by the request's deadline, redirects
never followed, and paging followed only while the ``next`` link stays under the server's base URL.
The access token goes in the Authorization header and nowhere else: not in errors, not in logs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

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


class Deadline:
    """The time left for all FHIR work of one hook call."""

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())


def normalise_base(url: str) -> str:
    return url.rstrip("/")


def is_allowed_server(url: str, allowed: tuple[str, ...]) -> bool:
    """True when ``url`` is exactly one of the configured base URLs (scheme, host, port, path)."""
    return normalise_base(url) in {normalise_base(server) for server in allowed}


def is_under_base(url: str, base: str) -> bool:
    """True when ``url`` has the base's scheme and host and a path at or below the base path."""
    target, root = urlsplit(url), urlsplit(normalise_base(base))
    if (target.scheme, target.netloc) != (root.scheme, root.netloc):
        return False
    return target.path == root.path or target.path.startswith(root.path + "/")


@dataclass(frozen=True)
class SearchResult:
    resources: list[dict[str, Any]]
    truncated: bool


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def bundle_resources(bundle: dict[str, Any]) -> list[Any]:
    """Resources of a Bundle's entries, without search OperationOutcomes (mode ``outcome``).

    An entry that holds no resource object is passed on as it is, so the parser reports it as
    unreadable instead of it vanishing: a dropped Condition must not look like no Condition.
    """
    found: list[Any] = []
    for entry in bundle.get("entry") or []:
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
    ) -> None:
        self.base_url = normalise_base(base_url)
        self._session = session
        self._timeout_s = timeout_s
        self._max_pages = max_pages
        self._headers = {"Accept": "application/fhir+json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def read(self, reference: str, deadline: Deadline) -> dict[str, Any]:
        """GET ``{base}/{Type}/{id}``."""
        return self._get(f"{self.base_url}/{reference}", deadline)

    def search(self, query: str, deadline: Deadline) -> SearchResult:
        """GET ``{base}/{query}`` and every ``next`` page under the base, up to ``max_pages``."""
        first = self._get(f"{self.base_url}/{query}", deadline)
        if first.get("resourceType") != "Bundle":
            return SearchResult([first], truncated=False)
        return self.follow_pages(first, deadline, pages_read=1)

    def follow_pages(
        self, bundle: dict[str, Any], deadline: Deadline, pages_read: int = 1
    ) -> SearchResult:
        """Collect the resources of ``bundle`` and of the pages its ``next`` links lead to."""
        resources = bundle_resources(bundle)
        seen: set[str] = set()
        url = next_link(bundle)
        while url:
            url = urljoin(self.base_url + "/", url)
            if not is_under_base(url, self.base_url):
                raise FhirRefused(f"next link leaves the FHIR server base {self.base_url}")
            if url in seen or pages_read >= self._max_pages:
                return SearchResult(resources, truncated=True)
            seen.add(url)
            page = self._get(url, deadline)
            if page.get("resourceType") != "Bundle":
                raise FhirInvalidResponse(f"a next page of {self.base_url} is not a Bundle")
            pages_read += 1
            resources.extend(bundle_resources(page))
            url = next_link(page)
        return SearchResult(resources, truncated=False)

    def _get(self, url: str, deadline: Deadline) -> dict[str, Any]:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise FhirTimeout("the time budget for FHIR requests is used up")
        timeout = min(self._timeout_s, remaining)
        path = urlsplit(url).path  # logged without query: queries carry patient ids
        started = time.monotonic()
        try:
            response = self._session.get(
                url,
                headers=self._headers,
                timeout=(min(_CONNECT_TIMEOUT_S, timeout), timeout),
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise FhirTimeout(f"{path}: no answer within {timeout:.1f} s") from exc
        except requests.RequestException as exc:
            raise FhirUnreachable(f"{path}: {type(exc).__name__}") from exc
        log.debug(
            "fhir GET %s -> %s in %.0f ms",
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return _json_body(response, path)


def _json_body(response: requests.Response, path: str) -> dict[str, Any]:
    status = response.status_code
    if status in (401, 403):
        raise FhirAuthError(f"{path}: HTTP {status}")
    if status in (404, 410):
        raise FhirNotFound(f"{path}: HTTP {status}")
    if 300 <= status < 400:
        raise FhirRefused(f"{path}: HTTP {status} redirect not followed")
    if status >= 400 or status < 200:
        raise FhirServerError(f"{path}: HTTP {status}")
    try:
        body = response.json()
    except ValueError as exc:
        raise FhirInvalidResponse(f"{path}: the body is not JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirInvalidResponse(f"{path}: the body is not a FHIR resource")
    if body["resourceType"] == "OperationOutcome":
        raise FhirInvalidResponse(f"{path}: the server answered with an OperationOutcome")
    return body
