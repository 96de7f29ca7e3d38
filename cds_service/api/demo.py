"""The demo order-entry page (``IVIG_CDS_DEMO_PAGE``, on under ``make run``, off by default).

The page at ``/demo/`` is a CDS client like any EHR: it calls ``/cds-services/...`` and the
feedback endpoint with JSON, through the same validation. What it needs of its own, an EHR's
patient list, record and orderables, comes from the read-only routes below.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from cds_service.demo_patients import FixturePatients, UnknownPatient
from cds_service.runtime import Runtime

PAGE_DIR = Path(__file__).resolve().parents[1] / "demo_page"
# The page loads its own files only (no CDN, no inline script): card text cannot run as code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

bp = Blueprint("demo", __name__, static_folder=PAGE_DIR, static_url_path="/demo/static")


def _runtime() -> Runtime:
    return current_app.extensions["ivig_cds"]  # type: ignore[no-any-return]


def _patients() -> FixturePatients:
    return current_app.extensions["ivig_cds_demo_patients"]  # type: ignore[no-any-return]


@bp.after_request
def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/demo/")
def page() -> ResponseReturnValue:
    return send_from_directory(PAGE_DIR, "index.html")


@bp.get("/demo/choices")
def choices() -> ResponseReturnValue:
    """The orderables (from the knowledge), the services by hook, and today's date."""
    runtime = _runtime()
    return jsonify(
        {
            **runtime.registry.order_choices,
            "services": {service.hook: service.id for service in runtime.registry},
            "today": runtime.clock().date().isoformat(),
        }
    )


@bp.get("/demo/patients")
def patients() -> ResponseReturnValue:
    return jsonify({"patients": _patients().listing()})


@bp.get("/demo/patients/<path:key>")
def patient(key: str) -> ResponseReturnValue:
    runtime = _runtime()
    templates = {
        service.id: {spec.key: spec.template for spec in service.prefetch}
        for service in runtime.registry
    }
    try:
        return jsonify(_patients().record(key, runtime.clock().date(), templates))
    except UnknownPatient:
        raise NotFound(f"no fixture patient {key!r}") from None


def install_demo_page(app: Flask) -> None:
    app.extensions["ivig_cds_demo_patients"] = FixturePatients()
    app.register_blueprint(bp)
