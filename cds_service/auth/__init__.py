"""Authentication of CDS clients (EHRs) by signed JWT: no Flask here (``api.auth_hook`` wires it).

``build_verifier`` runs at start-up and raises ``ConfigError`` for a bad issuer list;
``JwtVerifier.authenticate`` returns the ``TrustedIssuer`` of a valid token or raises
``AuthenticationFailed`` (reason for the log, never shown to the client).
"""

from cds_service.auth.issuers import SigningKey, TrustedIssuer, load_trusted_issuers
from cds_service.auth.verifier import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    JwtVerifier,
    build_verifier,
)

__all__ = [
    "AuthenticationFailed",
    "AuthenticationUnavailable",
    "JwtVerifier",
    "SigningKey",
    "TrustedIssuer",
    "build_verifier",
    "load_trusted_issuers",
]
