"""`ivig-cds serve` and `python -m cds_service serve` start the production server (gunicorn)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["-m", "cds_service"], ["-m", "cds_service.cli"]])
def test_serve_starts_gunicorn_and_answers_discovery(tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    env = os.environ | {"IVIG_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'f.sqlite3'}"}
    if command[-1] == "cds_service.cli":  # the console script's own entry point
        command = ["-c", "from cds_service.cli import main; raise SystemExit(main())"]
    process = subprocess.Popen(
        [sys.executable, *command, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        for _ in range(100):
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
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "gunicorn" in output.lower() or "Booting worker" in output
