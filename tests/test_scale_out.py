"""Two instances behind a load balancer (issue 15): nothing works only on one.

Two ``ivig-cds serve`` processes (each gunicorn with 2 workers, its own port and audit spool)
share the test PostgreSQL (a schema of their own) and Redis, behind Debian's nginx running the
repository's nginx/ivig-cds.conf with both as its round-robin upstream. JWT authentication is on,
as in production. Checked: feedback sent to the instance that did not issue the card is stored; a
JWT used on one is refused by the other; order-sign on one leaves out what order-select showed on
the other; and an instance stopped (SIGTERM) under load finishes the call it holds, loses no call
and leaves nothing in its spool. The figures go to the run's summary ("figures").

Loopback only; about 10 s. Without PostgreSQL, Redis or nginx it skips, and fails under
IVIG_CDS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
import sqlalchemy
from auth_keys import PUBLIC_BASE, claims, es384_key, jwk_set, sign
from conftest import (
    FHIR_BASE,
    FIGURES,
    full_prefetch,
    hook_request,
    order_for,
    postgres_schema,
    redis_database,
    repeats_at_order_sign,
    scenario_resources,
)
from fhir_test_server import FhirTestServer, sleep
from nginx_proxy import proxying
from production_server import Served, served

from cds_service.feedback import feedback, hook_calls, issued_cards
from cds_service.repeats import order_select_cards

REDIS_URL = "redis://127.0.0.1:6379/14"
EHR = "https://ehr.scale-out.example"
KEY = es384_key()
DISCOVERY = "/cds-services"
SELECT = "/cds-services/ivig-order-select"
SIGN = "/cds-services/ivig-order-sign"
FEEDBACK = SELECT + "/feedback"
SCENARIO = "ivig-in-dvt-resolved-history"  # a boxed-warning (thrombosis) card
SLOW_SEARCH_S = 2.0  # the FHIR search that keeps a call in flight while its instance stops
LOAD_CLIENTS = 4


class Cluster(NamedTuple):
    a: Served
    b: Served
    proxy: int
    database: sqlalchemy.engine.Engine
    fhir: FhirTestServer  # slow on one search: for the call in flight at a stop
    scratch: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    scratch = tmp_path_factory.mktemp("scale-out")
    resources = scenario_resources(SCENARIO)
    with contextlib.ExitStack() as stack:
        redis_db = stack.enter_context(redis_database(REDIS_URL))
        stack.callback(redis_db.flushdb)  # the replay keys of this module's tokens
        database_url = stack.enter_context(postgres_schema())
        fhir = stack.enter_context(FhirTestServer(resources).start())
        fhir.on("Condition", sleep(SLOW_SEARCH_S))
        issuer = {"iss": EHR, "jwks": jwk_set(KEY), "fhir_servers": [FHIR_BASE, fhir.base]}
        env = {
            "IVIG_CDS_DATABASE_URL": database_url,
            "IVIG_CDS_REDIS_URL": REDIS_URL,
            "IVIG_CDS_AUTH": "jwt",
            "IVIG_CDS_TRUSTED_ISSUERS": json.dumps([issuer]),
            "IVIG_CDS_PUBLIC_BASE_URL": PUBLIC_BASE,
            "IVIG_CDS_ALLOWED_FHIR_SERVERS": f"{FHIR_BASE},{fhir.base}",
            "IVIG_CDS_EVALUATION_DATE": "2026-06-15",
            # A loaded 2-core machine must not turn a check into a "time limit" card.
            "IVIG_CDS_REQUEST_BUDGET_S": "20",
            "IVIG_CDS_CHECK_BUDGET_S": "20",
            "IVIG_CDS_FHIR_TIMEOUT_S": "15",
            "IVIG_CDS_GRACEFUL_TIMEOUT_S": "25",
            "IVIG_CDS_LOG_LEVEL": "INFO",
        }
        (scratch / "a").mkdir(), (scratch / "b").mkdir()
        a = stack.enter_context(served(scratch / "a", **env))
        b = stack.enter_context(served(scratch / "b", **env))
        proxy = stack.enter_context(proxying(scratch, a.port, b.port))
        engine = sqlalchemy.create_engine(database_url)
        stack.callback(engine.dispose)
        yield Cluster(a, b, proxy, engine, fhir, scratch)


def _url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


def _token(path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign(KEY, claims(EHR, path))}"}


def _call(
    port: int,
    path: str,
    body: dict[str, Any],
    session: requests.Session | None = None,
) -> tuple[int, dict[str, Any]]:
    post = (session or requests).post
    response = post(_url(port, path), json=body, headers=_token(path), timeout=60)
    return response.status_code, response.json()


def _order_call(
    hook: str, user: str = "Practitioner/scale-out", *, prefetch: bool = True
) -> dict[str, Any]:
    resources = scenario_resources(SCENARIO)
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = hook_request(
        hook,
        patient,
        [order_for("privigen-iv", patient)],
        prefetch=full_prefetch(resources) if prefetch else None,
    )
    body["hookInstance"] = str(uuid.uuid4())
    body["context"]["userId"] = user
    return body


def _rows(cluster: Cluster, statement: Any) -> list[Any]:
    with cluster.database.connect() as connection:
        return list(connection.execute(statement))


def _until(condition: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def _topic(card: dict[str, Any]) -> str:
    return str(card["source"]["topic"]["code"])


def test_the_proxy_takes_the_instances_in_turn(cluster: Cluster) -> None:
    before = _served_calls(cluster)
    for _ in range(6):
        status, answer = _call(cluster.proxy, SELECT, _order_call("order-select"))
        assert status == 200, answer
    after = _served_calls(cluster)
    assert after["a"] - before["a"] >= 2 and after["b"] - before["b"] >= 2, (before, after)


def _served_calls(cluster: Cluster) -> Counter[str]:
    """Hook calls each instance answered, from its access log."""
    line = re.compile(r'"POST /cds-services/ivig-order-(select|sign)" 200 ')
    return Counter(
        {
            name: len(line.findall(server.log.read_text(errors="replace")))
            for name, server in (("a", cluster.a), ("b", cluster.b))
        }
    )


def test_feedback_sent_to_the_other_instance_is_stored(cluster: Cluster) -> None:
    """Sent at once: the card may still be in the first instance's audit writer, which the
    second waits for (IVIG_CDS_FEEDBACK_WAIT_S)."""
    status, answer = _call(cluster.a.port, SELECT, _order_call("order-select"))
    assert status == 200, answer
    card = answer["cards"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"userComment": "discussed with the patient"},
        "outcomeTimestamp": datetime.now(UTC).isoformat(),
    }
    status, stored = _call(cluster.b.port, FEEDBACK, {"feedback": [item]})
    assert status == 200, stored
    rows = _rows(cluster, sqlalchemy.select(feedback).where(feedback.c.card_uuid == card["uuid"]))
    assert [(row.outcome, row.user_comment) for row in rows] == [
        ("overridden", "discussed with the patient")
    ]


def test_a_jwt_used_on_one_instance_is_refused_by_the_other(cluster: Cluster) -> None:
    token = _token(DISCOVERY)
    assert requests.get(_url(cluster.a.port, DISCOVERY), headers=token, timeout=30).ok
    again = requests.get(_url(cluster.b.port, DISCOVERY), headers=token, timeout=30)
    assert again.status_code == 401, again.text
    through_proxy = requests.get(_url(cluster.proxy, DISCOVERY), headers=token, timeout=30)
    assert through_proxy.status_code == 401


def test_order_sign_on_one_instance_leaves_out_what_order_select_showed_on_the_other(
    cluster: Cluster,
) -> None:
    user = f"Practitioner/{uuid.uuid4()}"
    status, shown = _call(cluster.a.port, SELECT, _order_call("order-select", user))
    assert status == 200, shown
    uuids = [card["uuid"] for card in shown["cards"]]
    remembered = sqlalchemy.select(order_select_cards.c.id).where(
        order_select_cards.c.card_uuid.in_(uuids)
    )
    # Written just after the answer by A's memory writer (within about 10 ms; a clinician takes
    # seconds to sign): wait for its rows rather than for a guessed time.
    assert _until(lambda: bool(_rows(cluster, remembered))), "A's memory rows never came"

    not_again = {_topic(card) for card in shown["cards"] if not repeats_at_order_sign(card)}
    assert any(topic.startswith("IVIGBOXEDWARNING") for topic in not_again), not_again
    sign_call = _order_call("order-sign", user)
    status, signed = _call(cluster.b.port, SIGN, sign_call)
    assert status == 200, signed
    assert not {_topic(card) for card in signed["cards"]} & not_again
    assert _until(lambda: not_again <= _suppressed(cluster, sign_call)), "audited as suppressed"
    # another clinician's order-sign, on the same instance, sees them all
    status, other = _call(cluster.b.port, SIGN, _order_call("order-sign", "Practitioner/other"))
    assert status == 200, other
    assert not_again <= {_topic(card) for card in other["cards"]}


def _suppressed(cluster: Cluster, call: dict[str, Any]) -> set[str]:
    """The topics of the cards the call made and left out (its audit)."""
    statement = sqlalchemy.select(issued_cards.c.topic).where(
        issued_cards.c.hook_instance == call["hookInstance"],
        issued_cards.c.suppressed.is_(True),
    )
    return {row.topic for row in _rows(cluster, statement)}


class Load:
    """Clients calling order-select through the proxy, as fast as answers come, until stopped."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._stop = threading.Event()
        self.answered: list[tuple[str, int]] = []  # (hookInstance, status)
        self.failures: list[str] = []  # no HTTP answer at all
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(LOAD_CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        with requests.Session() as session:  # keep-alive to nginx, as an EHR's client would
            while not self._stop.is_set():
                body = _order_call("order-select", f"Practitioner/load-{uuid.uuid4()}")
                try:
                    status, _ = _call(self._cluster.proxy, SELECT, body, session)
                except (requests.RequestException, ValueError) as error:
                    with self._lock:
                        self.failures.append(f"{type(error).__name__}: {error}")
                    continue
                with self._lock:
                    self.answered.append((body["hookInstance"], status))


def test_an_instance_stopped_under_load_finishes_its_call_and_loses_none(
    cluster: Cluster,
) -> None:
    """Runs last in the module: it stops instance A. A call A holds when it is told to stop (a
    FHIR search that takes 2 s) is answered in full; every call of the load is answered (nginx
    sends new connections to B once A's listener is closed); every answered call has its audit
    record in PostgreSQL; A exits cleanly and leaves no audit record in its spool."""
    in_flight: dict[str, Any] = {}
    held = _order_call("order-select", "Practitioner/held", prefetch=False)
    held["fhirServer"] = cluster.fhir.base

    def hold() -> None:
        in_flight["status"], in_flight["answer"] = _call(cluster.a.port, SELECT, held)

    with Load(cluster) as load:
        assert _until(lambda: len(load.answered) >= 20, 30), "the load did not start"
        holder = threading.Thread(target=hold)
        holder.start()
        assert _until(lambda: cluster.fhir.hits_on("Condition") > 0), "A never searched"
        cluster.a.process.send_signal(signal.SIGTERM)
        stopped_at = len(load.answered)
        assert _until(lambda: len(load.answered) >= stopped_at + 40, 30), "load stalled"
        holder.join(timeout=30)
    exit_code = cluster.a.process.wait(timeout=40)

    statuses = Counter(status for _, status in load.answered)
    assert in_flight.get("status") == 200, in_flight
    assert any(
        _topic(card).startswith("IVIGBOXEDWARNING") for card in in_flight["answer"]["cards"]
    ), "the held call was answered in full, with the record's boxed-warning card"
    # gunicorn's master exits with 0 even after it killed workers that overran the graceful
    # timeout: its log says so, and must not.
    assert exit_code == 0 and "graceful timeout" not in cluster.a.log.read_text(), "A's stop"
    assert not load.failures, load.failures[:5]
    assert set(statuses) == {200}, statuses
    answered = {instance for instance, _ in load.answered} | {held["hookInstance"]}

    def audited() -> set[str]:
        statement = sqlalchemy.select(hook_calls.c.hook_instance).where(
            hook_calls.c.hook_instance.in_(answered)
        )
        return {row.hook_instance for row in _rows(cluster, statement)}

    assert _until(lambda: audited() == answered), f"{len(answered - audited())} calls not audited"
    spooled = [
        path
        for path in (cluster.scratch / "a" / "audit-spool").glob("audit-*")
        if path.read_text().strip()
    ]
    assert not spooled, "A left audit records in its spool"
    served_by = _served_calls(cluster)
    errors = (cluster.scratch / "error.log").read_text(errors="replace").splitlines()
    sent_again = [line for line in errors if "[error]" in line and "upstream" in line]
    stored_feedback = len(_rows(cluster, sqlalchemy.select(feedback.c.id)))
    FIGURES.append(
        f"scale-out (2 instances x 2 workers behind nginx, {LOAD_CLIENTS} clients): "
        f"{len(load.answered)} calls under load, {sum(statuses.values()) - statuses[200]} "
        f"errors, {len(load.failures)} without an answer, {stopped_at} before A's SIGTERM; "
        f"hook calls answered by A {served_by['a']}, by B {served_by['b']}; "
        f"{len(sent_again)} sent to B again by nginx after A reset or refused them; "
        f"all {len(answered)} audited; feedback stored {stored_feedback}; "
        f"the call A held answered with status {in_flight['status']}; A's exit code {exit_code}"
    )
