"""FHIR access: the one HTTP client and prefetch resolution (nothing else does FHIR HTTP)."""
