"""The benchmark's floor: a minimal Flask app answering ``{"cards": []}``, served by the same
gunicorn settings as ``ivig-cds serve``. What the service costs is measured against it.

    python benchmarks/floor.py --port 8099 [--workers 2]
"""

from __future__ import annotations

import argparse

from flask import Flask, Response, jsonify, request

from cds_service.cli import GunicornApp, gunicorn_options


def create_floor() -> Flask:
    app = Flask("floor")

    @app.get("/cds-services")
    def discovery() -> Response:
        return jsonify({"services": []})

    @app.post("/cds-services/<service_id>")
    def call(service_id: str) -> Response:
        request.get_data()  # the body is read, as the service reads it, but not parsed
        return jsonify({"cards": []})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    GunicornApp(gunicorn_options(args.host, args.port, args.workers), create_floor).run()


if __name__ == "__main__":
    main()
