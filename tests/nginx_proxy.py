"""nginx/ivig-cds.conf under a real nginx, on loopback, in front of one or more production
servers (tests/test_reverse_proxy.py: one; tests/test_scale_out.py: two, round-robin).

nginx comes from the machine, else from Debian's package unpacked by `make test`
(``.venv/nginx``); without it the tests skip, and fail under IVIG_CDS_REQUIRE_SERVICES=1."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import REQUIRE_SERVICES
from production_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "nginx" / "ivig-cds.conf"
UNPACKED = ROOT / ".venv" / "nginx" / "usr" / "sbin" / "nginx"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (str(UNPACKED) if UNPACKED.exists() else None)
    if found is None:
        reason = "nginx is not installed (`make test` unpacks Debian's package into .venv/nginx)"
        if REQUIRE_SERVICES:
            pytest.fail(f"nginx is required (IVIG_CDS_REQUIRE_SERVICES=1): {reason}")
        pytest.skip(reason)
    return found


def proxy_config(scratch: Path, upstream_ports: Sequence[int], listen_port: int) -> Path:
    """nginx.conf for this run: the repository's server block, its upstream (one server per
    port, taken in turn) and its port moved to loopback, inside an http block with the run's
    own paths."""
    server = CONF.read_text()
    upstreams = "\n    ".join(f"server 127.0.0.1:{port};" for port in upstream_ports)
    for compose_value, local_value in (
        ("server ivig-cds:8080;", upstreams),
        ("listen 8080;", f"listen 127.0.0.1:{listen_port};"),
        ("/var/log/nginx/access.log", str(scratch / "access.log")),
    ):
        assert compose_value in server, f"{CONF.name} no longer has {compose_value!r}"
        server = server.replace(compose_value, local_value)
    (scratch / "ivig-cds.conf").write_text(server)
    shutil.copy(CONF.parent / "ivig-cds-outcome.conf", scratch)
    temp = {name: scratch / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    main = scratch / "nginx.conf"
    main.write_text(
        f"""daemon off;
worker_processes 1;
pid {scratch / "nginx.pid"};
error_log {scratch / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include ivig-cds.conf;
}}
"""
    )
    return main


@contextlib.contextmanager
def proxying(scratch: Path, *upstream_ports: int) -> Iterator[int]:
    """nginx's port, in front of ``upstream_ports``."""
    process, port = _started(scratch, upstream_ports)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _started(scratch: Path, upstream_ports: Sequence[int]) -> tuple[subprocess.Popen[bytes], int]:
    """nginx listening on a free port. A port from ``free_port`` is free only when asked:
    another process can take it first, and then something else would answer on it. So ready
    means this nginx is still running and listens; one that could not bind is started again on
    another port."""
    binary = nginx_binary()
    for _ in range(5):
        port = free_port()
        main = proxy_config(scratch, upstream_ports, port)
        command = [binary, "-p", str(scratch), "-c", str(main), "-e", str(scratch / "error.log")]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if process.poll() is not None:
                break  # it exited: most likely the port was taken (error.log says)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                if not _bind_failed(scratch, port):  # else another process answered
                    return process, port
                break
            time.sleep(0.05)
        process.terminate()
        process.wait(timeout=10)
    log = (scratch / "error.log").read_text(errors="replace")[-2000:]
    pytest.fail(f"nginx did not listen (5 tries); its error log:\n{log}")


def _bind_failed(scratch: Path, port: int) -> bool:
    """nginx logs a bind it could not make (and tries again for about 2 s before it exits)."""
    log = scratch / "error.log"
    return log.exists() and f"bind() to 127.0.0.1:{port} failed" in log.read_text(errors="replace")
