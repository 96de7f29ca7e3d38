"""The service's exception tree. No Flask here: ``cds_service.api.handlers`` maps it to HTTP.

CdsError                      500  base; never raised directly
├── InvalidHookRequest        400  the body breaks the CDS Hooks request rules
├── UnknownService            404  no service with that id
├── UnknownCard               404  feedback names a card this service never issued
├── PrefetchUnavailable       412  essential data is neither prefetched nor fetchable
├── StoreUnavailable          503  the feedback database did not take the write
└── KnowledgeError            start-up: a knowledge file is invalid

FhirError                          raised by the FHIR client; callers turn it into 412 or a card
├── FhirRefused                    the URL is not on the allowlist / not under the base URL
├── FhirTimeout                    no answer within the time left
├── FhirUnreachable                connection failed
├── FhirAuthError                  401 / 403
├── FhirNotFound                   404 / 410
├── FhirServerError                any other non-2xx status
└── FhirInvalidResponse            not JSON, not a FHIR resource, or an OperationOutcome
    └── FhirResponseTooLarge       bigger than IVIG_CDS_FHIR_MAX_RESPONSE_BYTES
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem and the request field it concerns, e.g. ``context.patientId``."""

    message: str
    expression: str | None = None


class CdsError(Exception):
    status_code = 500
    issue_code = "exception"

    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.issues = issues or [Issue(message)]


class InvalidHookRequest(CdsError):
    status_code = 400
    issue_code = "invalid"


class UnknownService(CdsError):
    status_code = 404
    issue_code = "not-found"


class UnknownCard(CdsError):
    status_code = 404
    issue_code = "not-found"


class PrefetchUnavailable(CdsError):
    status_code = 412
    issue_code = "processing"


class StoreUnavailable(CdsError):
    status_code = 503
    issue_code = "transient"


class KnowledgeError(CdsError):
    """A knowledge file is missing, malformed, or inconsistent; raised at start-up."""


class FhirError(Exception):
    """A FHIR request failed. The message never contains the access token. ``outcome``: the
    OperationOutcome the server sent with an error status, if any."""

    outcome: dict[str, Any] | None = None


class FhirRefused(FhirError):
    pass


class FhirTimeout(FhirError):
    pass


class FhirUnreachable(FhirError):
    pass


class FhirAuthError(FhirError):
    pass


class FhirNotFound(FhirError):
    pass


class FhirServerError(FhirError):
    pass


class FhirInvalidResponse(FhirError):
    pass
