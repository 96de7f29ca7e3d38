"""Prometheus metrics for ``/metrics``: requests, cards, feedback and FHIR fetches, per app.

``install_metrics(app)`` gives the app its own ``CollectorRegistry`` (not prometheus_client's
global one, so several apps in one process, as in the tests, do not clash) and registers:

- ``ivig_cds_http_requests_total`` and ``ivig_cds_http_request_duration_seconds`` (histogram),
  labelled by Flask ``endpoint``, ``service`` (a registered service id, else empty) and HTTP
  ``status``. A before/after_request pair, placed first and last so that the time covers the
  other hooks (JWT authentication included) and the status is the final one;
- ``ivig_cds_cards_total`` by card ``service``, ``topic`` and ``indicator``, from the cards a
  hook call returned (the view leaves them on ``g.cds_cards``);
- ``ivig_cds_feedback_total`` by ``service``, card ``topic`` and ``outcome`` (accepted or
  overridden), one per feedback item stored, counted once the batch is committed (the feedback
  view leaves the items' topics and outcomes on ``g.cds_feedback``; a refused batch counts
  nothing). The topic is that of the card the item names, as the store recorded it;
- ``ivig_cds_fhir_fetch_duration_seconds`` (histogram) and ``ivig_cds_fhir_fetch_failures_total``
  by FHIR ``resource_type`` and ``outcome``, from a ``requests`` response hook on the runtime's
  FHIR session. It sees every HTTP answer of a FHIR server (time to the response headers, status)
  but not the requests that got no answer at all (connection refused, timeout), which
  ``FhirClient`` turns into exceptions before any hook runs.

Label values are bounded: unknown service ids and non-FHIR path segments are not used as labels.

**Several gunicorn workers.** Each worker process has its own registry, so a scrape of
``/metrics`` shows the counters of whichever worker answered it (no multiprocess mode here). To
aggregate across workers, use prometheus_client's multiprocess mode: set the environment variable
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory writable by the workers (wiped at each start),
mark dead workers in gunicorn's ``child_exit`` hook with
``prometheus_client.multiprocess.mark_process_dead(worker.pid)``, and serve ``/metrics`` from a
registry that holds ``prometheus_client.multiprocess.MultiProcessCollector(registry)`` instead of
this per-app one (the metric objects must then be created against no registry, as the
multiprocess docs describe). Worker recycling (``IVIG_CDS_MAX_REQUESTS``) resets a worker's
counters, which Prometheus ``rate()`` handles as a counter reset.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics", "install_metrics", "render"]

EXTENSION = "ivig_cds_metrics"
# The classic text format every Prometheus server reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FHIR_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metric objects of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        request_labels = ("endpoint", "service", "status")
        self.requests = Counter(
            "ivig_cds_http_requests",
            "HTTP requests answered, by endpoint, CDS service id and status.",
            request_labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "ivig_cds_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint, CDS service id and status.",
            request_labels,
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.cards = Counter(
            "ivig_cds_cards",
            "Cards returned by hook calls, by service, card topic and indicator.",
            ("service", "topic", "indicator"),
            registry=self.registry,
        )
        self.feedback = Counter(
            "ivig_cds_feedback",
            "Feedback items stored, by service, card topic and outcome.",
            ("service", "topic", "outcome"),
            registry=self.registry,
        )
        fhir_labels = ("resource_type", "outcome")
        self.fhir_latency = Histogram(
            "ivig_cds_fhir_fetch_duration_seconds",
            "Time to the response headers of a FHIR server, by resource type and outcome.",
            fhir_labels,
            buckets=_FHIR_BUCKETS,
            registry=self.registry,
        )
        self.fhir_failures = Counter(
            "ivig_cds_fhir_fetch_failures",
            "FHIR server answers that were not 2xx, by resource type and outcome.",
            fhir_labels,
            registry=self.registry,
        )

    def observe_fhir(self, url: str, status: int, seconds: float) -> None:
        kind = fhir_resource_type(url)
        result = fhir_outcome(status)
        self.fhir_latency.labels(kind, result).observe(seconds)
        if result != "ok":
            self.fhir_failures.labels(kind, result).inc()


def fhir_resource_type(url: str) -> str:
    """``Condition`` for ``.../Condition?patient=1``, ``Patient`` for ``.../Patient/1``."""
    for segment in reversed(urlsplit(url).path.split("/")):
        if _RESOURCE_TYPE.fullmatch(segment):
            return segment
    return "other"  # e.g. a server's paging link at the base (HAPI's ?_getpages=)


def fhir_outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        return "auth"
    if status in (404, 410):
        return "not_found"
    if 300 <= status < 400:
        return "redirect"
    return "server_error" if status >= 500 else "client_error"


def install_metrics(app: Flask) -> Metrics:
    """Create the app's metrics and the hooks that feed them; ``/metrics`` serves them."""
    metrics = Metrics()
    app.extensions[EXTENSION] = metrics
    runtime = app.extensions.get("ivig_cds")
    registry = getattr(runtime, "registry", None)

    def start() -> None:
        g.metrics_started = time.perf_counter()

    def observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        endpoint = request.endpoint or "none"
        service = (request.view_args or {}).get("service_id", "")
        if registry is None or registry.get(service) is None:
            service = ""  # never an arbitrary caller-chosen label value
        status = str(response.status_code)
        metrics.requests.labels(endpoint, service, status).inc()
        if started is not None:
            elapsed = time.perf_counter() - started
            metrics.latency.labels(endpoint, service, status).observe(elapsed)
        for card in g.pop("cds_cards", None) or []:
            topic = ((card.get("source") or {}).get("topic") or {}).get("code", "")
            metrics.cards.labels(service, topic, card.get("indicator", "")).inc()
        for topic, outcome in g.pop("cds_feedback", None) or ():
            metrics.feedback.labels(service, topic or "", outcome).inc()
        return response

    # First before_request (timing covers authentication; it runs even when a later hook answers
    # 401) and last after_request (after CORS, which turns a preflight's 200 into 204).
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request_funcs.setdefault(None, []).insert(0, observe)

    # The runtime's requests Session takes response hooks; no requests import needed here.
    hooks = getattr(getattr(runtime, "session", None), "hooks", None)
    if isinstance(hooks, dict):
        hooks.setdefault("response", []).append(_fhir_hook(metrics))
    return metrics


def _fhir_hook(metrics: Metrics) -> Any:
    def on_response(response: Any, *_: Any, **__: Any) -> None:
        metrics.observe_fhir(response.url, response.status_code, response.elapsed.total_seconds())

    return on_response


def render(app: Flask) -> bytes:
    """The exposition of the app's registry; empty when ``install_metrics`` was not called."""
    metrics = app.extensions.get(EXTENSION)
    return generate_latest(metrics.registry) if metrics is not None else b""
