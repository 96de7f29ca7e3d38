"""`ivig-cds serve` and `python -m cds_service serve` start the production server (gunicorn)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest
from production_server import start_listening, stop


@pytest.mark.parametrize("command", [["-m", "cds_service"], ["-m", "cds_service.cli"]])
def test_serve_starts_gunicorn_and_answers_discovery(tmp_path: Path, command: list[str]) -> None:
    env = os.environ | {"IVIG_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'f.sqlite3'}"}
    if command[-1] == "cds_service.cli":  # the console script's own entry point
        command = ["-c", "from cds_service.cli import main; raise SystemExit(main())"]
    log_path = tmp_path / "served.log"
    process, port = start_listening(
        [*command, "serve", "--host", "127.0.0.1"], env, tmp_path, log_path
    )
    try:
        body = None
        for _ in range(100):  # the worker boots after the master listens
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/cds-services", timeout=1
                ) as r:
                    body = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "the server did not answer within 10 s"
        assert sorted(s["hook"] for s in body["services"]) == [
            "order-select",
            "order-sign",
            "patient-view",
        ]
    finally:
        stop(process)
    assert "Booting worker" in log_path.read_text()
