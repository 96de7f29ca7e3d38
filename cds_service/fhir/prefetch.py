"""Resolve a service's prefetch templates for one hook call (CDS Hooks 2.0 #prefetch-template).

Per key: a prefetched value is used as it is (a paginated Bundle's ``next`` pages are fetched);
``null`` means the client knows there is no data; a missing key or an OperationOutcome means fetch
the query from ``fhirServer``. Fetches run in parallel within the call's deadline. Essential keys
that cannot be had raise PrefetchUnavailable (HTTP 412); other keys become gaps the hooks report.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, wait
from typing import Any

from cds_service.errors import FhirError, Issue, PrefetchUnavailable
from cds_service.fhir.client import (
    Deadline,
    FhirClient,
    SearchResult,
    bundle_resources,
    next_link,
)
from cds_service.service import PrefetchSpec, ResolvedData

log = logging.getLogger(__name__)

FetchResult = tuple[list[dict[str, Any]], str | None]  # (resources, why only part was read)
Job = tuple[Future[FetchResult], str]  # (fetch, why it was needed)

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill ``{{context.x}}`` and ``{{userPractitionerId}}`` tokens; None if one has no value."""
    missing = False

    def value_of(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(1)
        value: Any = None
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
        elif token in _USER_TOKENS:
            kind, _, user_id = str(context.get("userId", "")).partition("/")
            value = user_id if kind == _USER_TOKENS[token] else None
        if not isinstance(value, str | int) or value == "":
            missing = True
            return ""
        return str(value)

    rendered = _TOKEN.sub(value_of, template)
    return None if missing else rendered


def _is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _outcome_text(outcome: dict[str, Any]) -> str:
    texts = [
        str(issue.get("diagnostics") or (issue.get("details") or {}).get("text") or "")
        for issue in outcome.get("issue") or []
        if isinstance(issue, dict)
    ]
    return "; ".join(text for text in texts if text) or "no diagnostics"


class PrefetchResolver:
    """A :class:`cds_service.service.DataSource` over the request's prefetch and FHIR server."""

    def __init__(
        self,
        specs: tuple[PrefetchSpec, ...],
        prefetch: Mapping[str, Any],
        context: Mapping[str, Any],
        client: FhirClient | None,
        no_client_reason: str,
        deadline: Deadline,
        executor: Executor,
    ) -> None:
        self._specs = specs
        self._prefetch = prefetch
        self._context = context
        self._client = client
        self._no_client_reason = no_client_reason
        self._deadline = deadline
        self._executor = executor

    def resolve(self) -> ResolvedData:
        resources: dict[str, list[dict[str, Any]]] = {}
        gaps: dict[str, str] = {}
        jobs: dict[str, Job] = {}
        for spec in self._specs:
            value = self._prefetch.get(spec.key, _ABSENT)
            if value is None:
                resources[spec.key] = []
            elif value is _ABSENT or _is_operation_outcome(value):
                why = (
                    "not prefetched"
                    if value is _ABSENT
                    else f"the prefetch was an OperationOutcome ({_outcome_text(value)})"
                )
                self._schedule(spec, why, jobs, gaps)
            elif isinstance(value, dict) and value.get("resourceType") == "Bundle":
                resources[spec.key] = bundle_resources(value)
                if next_link(value):
                    self._schedule_pages(spec, value, jobs, gaps)
            elif isinstance(value, dict):
                resources[spec.key] = [value]
            else:
                gaps[spec.key] = "the prefetch value is not a FHIR resource"
        self._collect(jobs, resources, gaps)
        self._raise_if_essential_missing(resources, gaps)
        return ResolvedData(resources=resources, gaps=gaps)

    def _read(self, reference: str) -> dict[str, Any] | None:
        if self._client is None:
            return None
        try:
            return self._client.read(reference, self._deadline)
        except FhirError as exc:
            log.warning("could not read %s: %s", reference.split("/")[0], exc)
            return None

    def read_many(self, references: list[str]) -> dict[str, dict[str, Any]]:
        """Read in parallel within the call's deadline; what cannot be had is left out."""
        if self._client is None or not references:
            return {}
        if len(references) == 1:
            found = self._read(references[0])
            return {references[0]: found} if isinstance(found, dict) else {}
        jobs = {
            ref: self._executor.submit(contextvars.copy_context().run, self._read, ref)
            for ref in references
        }
        wait(list(jobs.values()), timeout=self._deadline.remaining())
        read: dict[str, dict[str, Any]] = {}
        for reference, job in jobs.items():
            if job.done() and isinstance(result := job.result(), dict):
                read[reference] = result
            else:
                job.cancel()
        return read

    def _schedule(
        self,
        spec: PrefetchSpec,
        why: str,
        jobs: dict[str, Job],
        gaps: dict[str, str],
    ) -> None:
        query = render_template(spec.template, self._context)
        if self._client is None:
            gaps[spec.key] = f"{why}, and it cannot be fetched: {self._no_client_reason}"
        elif query is None:
            gaps[spec.key] = f"{why}, and its template needs a context value the request lacks"
        else:
            jobs[spec.key] = (self._submit(self._fetch, query), why)

    def _schedule_pages(
        self,
        spec: PrefetchSpec,
        bundle: dict[str, Any],
        jobs: dict[str, Job],
        gaps: dict[str, str],
    ) -> None:
        if self._client is None:
            gaps[spec.key] = (
                f"the prefetched Bundle has more pages, not fetched: {self._no_client_reason}"
            )
            return
        why = "the prefetched Bundle has more pages"
        jobs[spec.key] = (self._submit(self._fetch_pages, bundle), why)

    def _submit(self, fetch: Callable[[Any], FetchResult], argument: Any) -> Future[FetchResult]:
        """Run a fetch in the pool with this request's context (its request id for the logs)."""
        return self._executor.submit(contextvars.copy_context().run, fetch, argument)

    def _fetch(self, query: str) -> tuple[list[dict[str, Any]], str | None]:
        assert self._client is not None
        if query.split("?")[0].count("/") == 1:  # an instance read such as Patient/123
            return [self._client.read(query, self._deadline)], None
        return _partial(self._client.search(query, self._deadline))

    def _fetch_pages(self, bundle: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        assert self._client is not None
        return _partial(self._client.follow_pages(bundle, self._deadline))

    def _collect(
        self,
        jobs: dict[str, Job],
        resources: dict[str, list[dict[str, Any]]],
        gaps: dict[str, str],
    ) -> None:
        if not jobs:
            return
        wait([job for job, _ in jobs.values()], timeout=self._deadline.remaining())
        for key, (job, why) in jobs.items():
            if not job.done():
                job.cancel()
                gaps[key] = f"{why}, and the FHIR server did not answer within the time budget"
                continue
            try:
                found, partial = job.result()
            except FhirError as exc:
                gaps[key] = f"{why}, and the FHIR fetch failed: {exc}"
                continue
            resources[key] = found
            if partial:
                gaps[key] = f"only part of the data was read: {partial}"

    def _raise_if_essential_missing(
        self, resources: dict[str, list[dict[str, Any]]], gaps: dict[str, str]
    ) -> None:
        issues = [
            Issue(
                f"Essential data '{spec.key}' ({spec.template}) could not be obtained: "
                f"{gaps[spec.key]}. Needed for: {spec.needed_for}.",
                expression=f"prefetch.{spec.key}",
            )
            for spec in self._specs
            if spec.essential and spec.key in gaps and spec.key not in resources
        ]
        if issues:
            raise PrefetchUnavailable("essential data could not be obtained", issues)


def _partial(result: SearchResult) -> tuple[list[dict[str, Any]], str | None]:
    """The resources of a search, and why only part of them was read (None when all were)."""
    if not result.truncated:
        return result.resources, None
    return result.resources, result.why_truncated or "more pages than the paging limit"


_ABSENT: Any = object()
