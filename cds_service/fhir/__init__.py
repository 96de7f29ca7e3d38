"""FHIR access: the one HTTP client, prefetch resolution, and parsing into R4B models."""
