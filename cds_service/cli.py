"""``ivig-cds serve``: run the service under gunicorn, the production WSGI server.

``ivig-cds fixtures load|unload --fhir-base URL``: put the fixture patients on a FHIR server, or
take them off (``cds_service.fixtures_loader``).

``ivig-cds report shadow|feedback`` and ``ivig-cds knowledge report``: going live
(``cds_service.report_commands``, docs/go-live.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from cds_service import report_commands
from cds_service.config import Settings, load_settings
from cds_service.logs import configure_logging


class GunicornApp(BaseApplication):
    """gunicorn running ``load()``'s WSGI app with ``options`` (the benchmark's floor app uses it
    too, so both are served exactly alike)."""

    def __init__(self, options: dict[str, Any], load: Callable[[], Any]) -> None:
        self._options = options
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()


# The production server's own variables and their defaults, read here rather than in Settings
# (the app never sees them); deploy/kubernetes's ConfigMap may set these and Settings' fields.
SERVER_VARIABLES = {
    "IVIG_CDS_WORKERS": "2",
    "IVIG_CDS_WORKER_CLASS": "gevent",
    "IVIG_CDS_WORKER_CONNECTIONS": "1000",
    "IVIG_CDS_THREADS": "4",
    "IVIG_CDS_TIMEOUT_S": "30",
    "IVIG_CDS_GRACEFUL_TIMEOUT_S": "30",
    "IVIG_CDS_KEEPALIVE_S": "5",
    "IVIG_CDS_MAX_REQUESTS": "20000",
}


def server_setting(name: str) -> str:
    """One of ``SERVER_VARIABLES``, from the environment or its default."""
    return os.environ.get(name, SERVER_VARIABLES[name])


def gunicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    """The production server settings (``SERVER_VARIABLES``)."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        # gevent by measurement: 10 clients trickling a header byte every 3 s held every gthread
        # thread (2 workers x 4) and /healthz stopped answering; with gevent a slow client is a
        # parked greenlet: 50 of them, /healthz worst 5 ms (docs/operations.md "Slow clients").
        # gunicorn's worker of that class, answering what it refuses itself as the service does.
        "worker_class": f"cds_service.api.server_errors.{_WORKERS[worker_class()]}",
        "worker_connections": int(server_setting("IVIG_CDS_WORKER_CONNECTIONS")),
        "threads": int(server_setting("IVIG_CDS_THREADS")),  # gthread only
        "timeout": int(server_setting("IVIG_CDS_TIMEOUT_S")),
        # Stopping (SIGTERM: a rolling update, a scale-down): the listener closes at once; then
        # within this many seconds in all, each worker finishes its calls in flight (a call's
        # budget is 4 s), lets idle keep-alive connections time out (IVIG_CDS_KEEPALIVE_S) and
        # writes what it holds (worker_exit below: at most 5 s per writer). After it the master
        # kills what is left, so it must hold all three (docs/kubernetes.md "Stopping").
        "graceful_timeout": int(server_setting("IVIG_CDS_GRACEFUL_TIMEOUT_S")),
        # An idle keep-alive connection is closed after this many seconds. A proxy in front must
        # close its idle ones sooner (nginx: the upstream's keepalive_timeout 4s), else it can
        # send a call on a connection the service is closing, and get a 502 for it.
        "keepalive": int(server_setting("IVIG_CDS_KEEPALIVE_S")),
        # Recycle each worker after about this many requests (jitter: not all at once), a guard
        # against leaks; `make loadtest` shows flat memory, so it need not be often.
        "max_requests": int(server_setting("IVIG_CDS_MAX_REQUESTS")),
        "max_requests_jitter": 2000,
        # gunicorn 24+'s control socket is one path per user (~/.gunicorn/gunicorn.ctl): two
        # servers on a machine take it from each other, and nothing here uses it.
        "control_socket_disable": True,
        "accesslog": "-",
        # No query strings or headers in the access log: they can carry ids and tokens.
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
        # A worker that exits (recycled, or stopping) first writes its queued audit records
        # and order-select memory rows.
        "worker_exit": _flush_writers,
    }


_WORKERS = {"gevent": "GeventOutcomeWorker", "gthread": "ThreadOutcomeWorker"}


def worker_class() -> str:
    """``IVIG_CDS_WORKER_CLASS``: ``gevent`` (the default) or ``gthread``."""
    chosen = server_setting("IVIG_CDS_WORKER_CLASS")
    if chosen not in _WORKERS:
        raise SystemExit(f"IVIG_CDS_WORKER_CLASS must be gevent or gthread, not {chosen!r}")
    return chosen


# gevent must patch the standard library before ssl and requests are imported, else an https
# request recurses in ssl (gevent's documented order). This module imported them already (the
# cds_service package does), so ``serve`` starts a fresh interpreter that patches first.
PATCHED_BOOT = (
    "from gevent import monkey; monkey.patch_all(); import sys; "
    "from cds_service.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _patched_first(argv: list[str]) -> None:
    """Replace this process by one that patches with gevent before any other import."""
    from gevent import monkey

    if worker_class() == "gevent" and not monkey.is_module_patched("socket"):
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-c", PATCHED_BOOT, *argv])


def _flush_writers(_server: Any, _worker: Any) -> None:
    from cds_service import audit, repeats

    repeats.close_all()
    audit.close_all()


def _create_app() -> Any:
    from cds_service import create_app

    return create_app()


def _preload_modules() -> None:
    """Import the service's modules in the gunicorn master, before it forks the workers: a
    worker then starts (and a recycled one restarts) in about 0.1 s instead of 0.6 s. The app
    itself (database, threads) is still made in each worker, after the fork."""
    import cds_service.runtime  # noqa: F401
    import hooks
    import hooks.fhir_models

    hooks.fhir_models.model("MedicationRequest")


def _create_tables(settings: Settings) -> None:
    """The database's tables, made once in the master before the workers fork: two workers
    creating them at once raced, one failed to boot, and gunicorn then stops altogether ("Worker
    failed to boot"; seen as Connection refused in a test). Its connections are closed first."""
    from cds_service.feedback import FeedbackStore, make_engine
    from cds_service.repeats import RepeatMemory

    engine = make_engine(settings.database_url)
    try:
        FeedbackStore(engine).create_schema()
        RepeatMemory(engine, settings.repeat_window_s).create_schema()
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivig-cds", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the CDS Hooks API with gunicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=int(server_setting("IVIG_CDS_WORKERS")))
    _add_fixtures_parser(commands)
    report_commands.add_parsers(commands)
    args = parser.parse_args(argv)
    if args.command == "fixtures":
        return _fixtures(args)
    if args.command in ("report", "knowledge"):
        return report_commands.run(args)
    _patched_first(sys.argv[1:] if argv is None else argv)
    settings = load_settings(Settings, os.environ, {})  # fails fast on a bad setting
    configure_logging(settings.log_level, settings.log_format)
    print(f"ivig-cds: serving on http://{args.host}:{args.port}/cds-services")
    _preload_modules()
    _create_tables(settings)
    GunicornApp(gunicorn_options(args.host, args.port, args.workers), _create_app).run()
    return 0


def _add_fixtures_parser(commands: Any) -> None:
    fixtures = commands.add_parser(
        "fixtures", help="load the fixture patients onto a FHIR server, or unload them"
    )
    actions = fixtures.add_subparsers(dest="action", required=True)
    for action, text in (
        ("load", "PUT every scenario and patient-view bundle as a transaction (idempotent)"),
        ("unload", "DELETE the resources that load puts"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("--fhir-base", required=True, help="the FHIR server's base URL")
        sub.add_argument(
            "--token",
            default=os.environ.get("IVIG_CDS_FIXTURES_TOKEN"),
            help="bearer token (default: $IVIG_CDS_FIXTURES_TOKEN)",
        )
        sub.add_argument("--prefix", default="ivig-", help="put before every id (default ivig-)")
        sub.add_argument("--fixtures-dir", default=None, help="default: the fhir_fixtures folder")
        sub.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="first wait up to this long for the server's /metadata to answer",
        )
        sub.add_argument(
            "--timeout", type=float, default=60.0, help="seconds per HTTP request (default 60)"
        )


def _fixtures(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cds_service import fixtures_loader
    from cds_service.fhir.client import FhirClient
    from cds_service.runtime import make_session

    client = FhirClient(
        args.fhir_base,
        session=make_session(2),
        token=args.token,
        timeout_s=args.timeout,
        max_pages=1,
    )
    root = Path(args.fixtures_dir) if args.fixtures_dir else None
    try:
        if args.wait > 0:
            print(f"ivig-cds fixtures: waiting up to {args.wait:g} s for {client.base_url}")
            fixtures_loader.wait_for_server(client, args.wait, time.sleep)
        run = fixtures_loader.load if args.action == "load" else fixtures_loader.unload
        count = run(client, args.prefix, root, lambda line: print(line, flush=True))
    except fixtures_loader.FixtureError as exc:
        print(f"ivig-cds fixtures {args.action}: error: {exc}", file=sys.stderr)
        return 1
    done = "put on" if args.action == "load" else "deleted from"
    print(f"ivig-cds fixtures: {count} resources {done} {client.base_url}")
    return 0
