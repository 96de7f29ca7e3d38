"""``ivig-cds serve``: run the service under gunicorn, the production WSGI server."""

from __future__ import annotations

import argparse
import os
from typing import Any

from gunicorn.app.base import BaseApplication

from cds_service.config import Settings, load_settings
from cds_service.logs import configure_logging


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from cds_service import create_app

        return create_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivig-cds", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the CDS Hooks API with gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=int(os.environ.get("IVIG_CDS_WORKERS", "2")))
    args = parser.parse_args(argv)
    settings = load_settings(Settings, os.environ, {})  # fails fast on a bad setting
    configure_logging(settings.log_level, settings.log_format)
    print(f"ivig-cds: serving on http://{args.host}:{args.port}/cds-services")
    _Gunicorn(
        {
            "bind": f"{args.host}:{args.port}",
            "workers": args.workers,
            "threads": 4,
            "timeout": 30,
            "accesslog": "-",
            # No query strings or headers in the access log: they can carry ids and tokens.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
        }
    ).run()
    return 0
