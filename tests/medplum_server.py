"""A real FHIR R4 server for the tests: Medplum's engine behind ``tests/fhir_server/server.mjs``.

``medplum_fhir`` (session scope) installs the pinned npm packages with ``npm ci`` when
``tests/fhir_server/node_modules`` is missing or holds other versions (a few seconds), starts the
server on a free loopback port, waits for ``/metadata`` and yields the base URL; it stops the
server at the end of the session. The server starts empty and keeps everything in memory; its
search is a linear scan, so tests load only the fixture patients.

Without ``node``/``npm``, or when the install fails, the tests that use it are skipped, or fail
when ``IVIG_CDS_REQUIRE_SERVICES=1`` (CI). A server that is installed but does not start always
fails: that is a bug, not a missing tool.

Use it from a test module like the other server fixtures::

    import medplum_server

    medplum_fhir = medplum_server.medplum_fhir
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
START_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 600.0
_LISTENING = re.compile(r"fhir-server listening on (http://\S+)")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("IVIG_CDS_REQUIRE_SERVICES") == "1":
        pytest.fail(
            f"the Medplum FHIR test server is required (IVIG_CDS_REQUIRE_SERVICES=1): {reason}"
        )
    pytest.skip(f"Medplum FHIR test server unavailable: {reason}")


def _installed() -> bool:
    """True when node_modules holds the versions package.json pins."""
    pins = json.loads((SERVER_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]
    for name, version in pins.items():
        manifest = SERVER_DIR / "node_modules" / name / "package.json"
        try:
            if json.loads(manifest.read_text(encoding="utf-8")).get("version") != version:
                return False
        except (OSError, ValueError):
            return False
    return True


def _install(npm: str) -> None:
    try:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SERVER_DIR,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"`npm ci` in {SERVER_DIR} did not run: {exc}")
    if result.returncode != 0:
        _unavailable(
            f"`npm ci` in {SERVER_DIR} failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )


def _node_version(node: str) -> tuple[int, ...]:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"`node --version` failed: {exc}")
    return tuple(int(part) for part in re.findall(r"\d+", out)[:3])


def _metadata_ok(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/metadata", timeout=2) as response:
            return bool(json.load(response).get("resourceType") == "CapabilityStatement")
    except (OSError, ValueError):
        return False


def start_server(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Install if needed, start the server on a free port; the process and its base URL."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("`node` and `npm` must be on PATH (Node.js 20 or later)")
    if _node_version(node) < (20,):
        _unavailable("Node.js 20 or later is needed")
    if not _installed():
        _install(npm)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [node, "server.mjs", "--host", "127.0.0.1", "--port", "0"],
        cwd=SERVER_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"NODE_ENV": "test"},
    )
    log.close()
    ends = time.monotonic() + START_TIMEOUT_S
    base = None
    while time.monotonic() < ends:
        if process.poll() is not None:
            break
        if base is None and (match := _LISTENING.search(log_path.read_text(errors="replace"))):
            base = match[1]
        if base is not None and _metadata_ok(base):
            return process, base
        time.sleep(0.1)
    stop_server(process)
    pytest.fail(
        f"the Medplum FHIR test server did not answer /metadata within {START_TIMEOUT_S:g} s "
        f"(exit status {process.returncode}); its output:\n"
        f"{log_path.read_text(errors='replace')[-4000:]}"
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def medplum_fhir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running, initially empty Medplum FHIR server (no path, no slash)."""
    process, base = start_server(tmp_path_factory.mktemp("medplum") / "server.log")
    try:
        yield base
    finally:
        stop_server(process)
