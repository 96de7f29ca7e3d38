"""JWT authentication of CDS clients (CDS Hooks 2.0 #trusting-cds-clients, cds-service issue 5).

Keys are generated per run with cryptography; JWK Sets are served by a real HTTP server on
127.0.0.1 (``auth_keys.JwksServer``), which counts its hits. Every forged token gets a 401 with a
generic body; the log says why and never shows the token.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import responses
import sqlalchemy
import sqlalchemy.exc
from auth_keys import (
    PUBLIC_BASE,
    JwksServer,
    Key,
    claims,
    es384_key,
    hs256_token,
    jwk_set,
    rs384_key,
    sign,
    unsigned_token,
)
from conftest import (
    FHIR_BASE,
    FIXTURES,
    FakeFhirServer,
    make_app,
    postgres_schema,
    redis_database,
    scenario_resources,
)
from flask import Flask
from flask.testing import FlaskClient

from cds_service.auth import load_trusted_issuers
from cds_service.auth.issuers import parse_jwk_set
from cds_service.auth.replay import DatabaseReplayCache, ReplayCacheUnavailable, replay_key
from cds_service.config import ConfigError

EHR = "https://ehr.example.org"  # keys at a jwks_url on the local server, jku allowlisted
INLINE_EHR = "https://inline-ehr.example.org"  # inline JWK Set, tenants, another FHIR server
OTHER_FHIR = "https://fhir-b.test/r4"
DISCOVERY = "/cds-services"
SELECT = "/cds-services/ivig-order-select"
FEEDBACK = "/cds-services/ivig-order-select/feedback"
REDIS_URL = "redis://127.0.0.1:6379/15"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
GENERIC = "authentication failed"

ES = es384_key()
RS = rs384_key()
JKU_KEY = es384_key()  # only in the set at the allowlisted jku
INLINE = es384_key()
IMPOSTOR = es384_key(kid=ES.kid)  # another key with the same kid
ATTACKER = es384_key()


def select_body() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "requests" / "order-select-full-prefetch.json").read_text()))


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.sets["/ehr/jwks.json"] = jwk_set(ES, RS)
    server.sets["/jku/jwks.json"] = jwk_set(JKU_KEY)
    server.sets["/evil/jwks.json"] = jwk_set(ATTACKER)
    yield server
    server.close()


def issuers(server: JwksServer) -> list[dict[str, Any]]:
    return [
        {
            "iss": EHR,
            "jwks_url": server.url("/ehr/jwks.json"),
            "jku_allowlist": [server.url("/jku/jwks.json")],
            "fhir_servers": [FHIR_BASE],
        },
        {
            "iss": INLINE_EHR,
            "jwks": jwk_set(INLINE),
            "fhir_servers": [OTHER_FHIR],
            "tenants": ["tenant-a"],
        },
    ]


def auth_app(tmp_path: Path, server: JwksServer, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "AUTH": "jwt",
        "TRUSTED_ISSUERS": json.dumps(issuers(server)),
        "PUBLIC_BASE_URL": PUBLIC_BASE + "/",  # a trailing slash must not matter
        "JWKS_REFRESH_MIN_INTERVAL_S": 3600.0,
    }
    config.update(overrides)
    return make_app(tmp_path, **config)


@pytest.fixture
def client(tmp_path: Path, jwks_server: JwksServer) -> FlaskClient:
    return auth_app(tmp_path, jwks_server).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(key: Key, path: str, iss: str = EHR, **changes: Any) -> str:
    return sign(key, claims(iss, path, **changes))


def assert_refused(response: Any, *secrets: str) -> None:
    """401, WWW-Authenticate: Bearer, a generic OperationOutcome, CORS headers, no secrets."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert [issue["diagnostics"] for issue in body["issue"]] == [GENERIC]
    text = response.get_data(as_text=True)
    for secret in secrets:
        assert secret not in text


def auth_reasons(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("cds_service.auth") and r.levelno >= logging.WARNING
    )


# --- valid tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ES, RS], ids=["ES384", "RS384"])
def test_valid_token_opens_discovery_service_and_feedback(client: FlaskClient, key: Key) -> None:
    discovery = client.get(DISCOVERY, headers=bearer(token_for(key, DISCOVERY)))
    assert discovery.status_code == 200, discovery.get_json()
    assert discovery.get_json()["services"]

    called = client.post(SELECT, json=select_body(), headers=bearer(token_for(key, SELECT)))
    assert called.status_code == 200, called.get_json()
    cards = called.get_json()["cards"]
    assert cards, "the full-prefetch fixture fires cards"

    feedback = {
        "feedback": [
            {
                "card": cards[0]["uuid"],
                "outcome": "overridden",
                "overrideReason": {"userComment": "reviewed"},
                "outcomeTimestamp": "2026-06-15T12:05:00Z",
            }
        ]
    }
    stored = client.post(FEEDBACK, json=feedback, headers=bearer(token_for(key, FEEDBACK)))
    assert stored.status_code == 200, stored.get_json()
    assert stored.get_json() == {"stored": 1}


def test_aud_as_a_list_and_extra_claims_are_accepted(client: FlaskClient) -> None:
    now = int(time.time())
    token = token_for(
        ES,
        DISCOVERY,
        aud=["https://elsewhere.example.org", PUBLIC_BASE + DISCOVERY],
        sub="client-id",
        nbf=now - 300,  # Epic sends nbf about 5 minutes before iat
    )
    assert client.get(DISCOVERY, headers=bearer(token)).status_code == 200


def test_lowercase_bearer_scheme_and_no_typ_are_accepted(client: FlaskClient) -> None:
    token = sign(ES, claims(EHR, DISCOVERY), typ=None)
    assert client.get(DISCOVERY, headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_inline_jwks_issuer_with_its_tenant(client: FlaskClient) -> None:
    token = token_for(INLINE, DISCOVERY, iss=INLINE_EHR, tenant="tenant-a")
    assert client.get(DISCOVERY, headers=bearer(token)).status_code == 200


def test_jku_on_the_allowlist_is_fetched_and_cached(
    client: FlaskClient, jwks_server: JwksServer
) -> None:
    jku = jwks_server.url("/jku/jwks.json")
    for _ in range(2):
        token = sign(JKU_KEY, claims(EHR, DISCOVERY), jku=jku)
        assert client.get(DISCOVERY, headers=bearer(token)).status_code == 200
    assert jwks_server.hits["/jku/jwks.json"] == 1


def test_jwks_is_fetched_once_and_cached(client: FlaskClient, jwks_server: JwksServer) -> None:
    for key in (ES, RS, ES):
        assert client.get(DISCOVERY, headers=bearer(token_for(key, DISCOVERY))).status_code == 200
    assert jwks_server.hits["/ehr/jwks.json"] == 1


def test_cors_preflight_needs_no_token(client: FlaskClient) -> None:
    response = client.options(
        SELECT,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


def test_open_discovery_lets_discovery_through_but_not_service_calls(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    client = auth_app(tmp_path, jwks_server, AUTH_OPEN_DISCOVERY=True).test_client()
    assert client.get(DISCOVERY).status_code == 200
    assert_refused(client.post(SELECT, json=select_body()))
    assert_refused(client.post(FEEDBACK, json={"feedback": []}))


def test_discovery_is_closed_by_default(client: FlaskClient) -> None:
    assert_refused(client.get(DISCOVERY))


def test_unknown_routes_need_a_token_too(client: FlaskClient) -> None:
    assert_refused(client.get("/nothing-here"))
    token = token_for(ES, "/nothing-here")
    assert client.get("/nothing-here", headers=bearer(token)).status_code == 404


# --- forged and broken tokens --------------------------------------------------------------------

# name -> (build the Authorization header value, a fragment of the logged reason)
Forgery = Callable[[JwksServer], str]


def _expired(_: JwksServer) -> str:
    now = int(time.time())
    return "Bearer " + token_for(ES, DISCOVERY, iat=now - 600, exp=now - 120)


def _future_iat(_: JwksServer) -> str:
    now = int(time.time())
    return "Bearer " + token_for(ES, DISCOVERY, iat=now + 300, exp=now + 600)


def _jku_off_allowlist(server: JwksServer) -> str:
    return "Bearer " + sign(ATTACKER, claims(EHR, DISCOVERY), jku=server.url("/evil/jwks.json"))


FORGERIES: dict[str, tuple[Forgery, str]] = {
    "wrong key, same kid": (
        lambda s: "Bearer " + token_for(IMPOSTOR, DISCOVERY),
        "InvalidSignatureError",
    ),
    "alg none": (lambda s: "Bearer " + unsigned_token(claims(EHR, DISCOVERY), ES.kid), "'none'"),
    "HS256 with the public key PEM as secret": (
        lambda s: "Bearer " + hs256_token(claims(EHR, DISCOVERY), RS.public_pem(), RS.kid),
        "'HS256'",
    ),
    "expired": (_expired, "ExpiredSignatureError"),
    "iat in the future": (_future_iat, "ImmatureSignatureError"),
    "aud of another endpoint": (
        lambda s: "Bearer " + sign(ES, claims(EHR, DISCOVERY, aud=PUBLIC_BASE + SELECT)),
        "aud",
    ),
    "aud is Flask's internal URL": (
        lambda s: "Bearer " + sign(ES, claims(EHR, DISCOVERY, aud="http://localhost" + DISCOVERY)),
        "aud",
    ),
    "untrusted iss": (
        lambda s: "Bearer " + token_for(ES, DISCOVERY, iss="https://evil.example.org"),
        "not a trusted issuer",
    ),
    "jku off the allowlist": (_jku_off_allowlist, "allowlist"),
    "missing iss": (lambda s: "Bearer " + token_for(ES, DISCOVERY, iss=None), "no iss"),
    "missing aud": (lambda s: "Bearer " + token_for(ES, DISCOVERY, aud=None), '"aud"'),
    "missing exp": (lambda s: "Bearer " + token_for(ES, DISCOVERY, exp=None), '"exp"'),
    "missing iat": (lambda s: "Bearer " + token_for(ES, DISCOVERY, iat=None), '"iat"'),
    "missing jti": (lambda s: "Bearer " + token_for(ES, DISCOVERY, jti=None), '"jti"'),
    "missing kid": (lambda s: "Bearer " + sign(ES, claims(EHR, DISCOVERY), kid=None), "no kid"),
    "typ not JWT": (
        lambda s: "Bearer " + sign(ES, claims(EHR, DISCOVERY), typ="at+jwt"),
        "typ",
    ),
    "exp hours ahead": (
        lambda s: "Bearer " + token_for(ES, DISCOVERY, exp=int(time.time()) + 86400),
        "exp is more than",
    ),
    "Basic scheme": (lambda s: "Basic dXNlcjpwYXNzd29yZA==", "not Bearer"),
    "garbage token": (lambda s: "Bearer not-a-jwt-at-all.xyz", "malformed JWT"),
    "empty bearer": (lambda s: "Bearer ", "not one token"),
    "unknown tenant": (
        lambda s: "Bearer " + token_for(INLINE, DISCOVERY, iss=INLINE_EHR, tenant="tenant-b"),
        "tenant",
    ),
    "missing tenant when the issuer lists tenants": (
        lambda s: "Bearer " + token_for(INLINE, DISCOVERY, iss=INLINE_EHR),
        "tenant",
    ),
    "another issuer's key": (
        lambda s: "Bearer " + sign(INLINE, claims(EHR, DISCOVERY)),
        "no key with kid",
    ),
}


def test_a_tab_after_bearer_is_refused_without_logging_the_token(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: with a tab for the space, the whole header was the "scheme", and its first 20
    characters (13 of them the token's) were logged."""
    token = token_for(ES, DISCOVERY)
    with caplog.at_level(logging.INFO):
        response = client.get(DISCOVERY, headers={"Authorization": "Bearer\t" + token})
    assert_refused(response, token)
    assert "not Bearer" in auth_reasons(caplog)
    assert token[:8] not in caplog.text


def test_a_bare_credential_is_refused_without_logging_it(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A code review's case: a one-word header (an API key with no scheme) was quoted whole as
    the "scheme"; now only a known scheme such as Basic is named."""
    with caplog.at_level(logging.INFO):
        response = client.get(DISCOVERY, headers={"Authorization": "s3cr3tApiKey-123456"})
        assert response.status_code == 401
        client.get(DISCOVERY, headers={"Authorization": "Basic dXNlcjpwYXNzd29yZA=="})
    assert "s3cr3tApiKey" not in caplog.text
    assert "scheme 'Basic' is not Bearer" in caplog.text


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_token_is_refused_without_detail(
    client: FlaskClient,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    build, reason = FORGERIES[name]
    authorization = build(jwks_server)
    token = authorization.partition(" ")[2]
    with caplog.at_level(logging.INFO):
        response = client.get(DISCOVERY, headers={"Authorization": authorization})

    secrets = [token, reason] if len(token) >= 8 else [reason]
    assert_refused(response, *secrets)
    logged = auth_reasons(caplog)
    assert reason in logged, logged
    if len(token) >= 8:
        assert token not in caplog.text
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in caplog.text
    assert jwks_server.hits["/evil/jwks.json"] == 0, "a jku off the allowlist is never fetched"


def test_missing_authorization_is_refused(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert_refused(client.post(SELECT, json=select_body()))
    assert "no Authorization header" in auth_reasons(caplog)


def test_token_for_discovery_does_not_open_a_service_call(client: FlaskClient) -> None:
    assert_refused(
        client.post(SELECT, json=select_body(), headers=bearer(token_for(ES, DISCOVERY)))
    )
    feedback_token = token_for(ES, SELECT)  # the service's aud is not the feedback endpoint's
    assert_refused(client.post(FEEDBACK, json={"feedback": []}, headers=bearer(feedback_token)))


def test_replayed_jti_is_refused(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    token = token_for(ES, DISCOVERY)
    assert client.get(DISCOVERY, headers=bearer(token)).status_code == 200
    with caplog.at_level(logging.WARNING):
        assert_refused(client.get(DISCOVERY, headers=bearer(token)), token)
    assert "replay" in auth_reasons(caplog)
    assert token not in caplog.text


def test_a_forged_token_does_not_use_up_the_jti(client: FlaskClient) -> None:
    """The replay cache is written only after every other check, so a forgery carrying a
    legitimate token's jti cannot lock the real token out."""
    payload = claims(EHR, DISCOVERY)
    assert_refused(client.get(DISCOVERY, headers=bearer(sign(IMPOSTOR, payload))))
    assert client.get(DISCOVERY, headers=bearer(sign(ES, payload))).status_code == 200


def test_same_jti_from_two_issuers_is_two_tokens(client: FlaskClient) -> None:
    jti = "shared-nonce-1"
    first = token_for(ES, DISCOVERY, jti=jti)
    second = token_for(INLINE, DISCOVERY, iss=INLINE_EHR, jti=jti, tenant="tenant-a")
    assert client.get(DISCOVERY, headers=bearer(first)).status_code == 200
    assert client.get(DISCOVERY, headers=bearer(second)).status_code == 200


# --- JWKS refresh --------------------------------------------------------------------------------


def test_unknown_kid_refreshes_the_jwks_at_a_bounded_rate(
    client: FlaskClient, jwks_server: JwksServer
) -> None:
    assert client.get(DISCOVERY, headers=bearer(token_for(ES, DISCOVERY))).status_code == 200
    assert jwks_server.hits["/ehr/jwks.json"] == 1

    rotated = es384_key()  # not (yet) published
    assert_refused(client.get(DISCOVERY, headers=bearer(token_for(rotated, DISCOVERY))))
    assert jwks_server.hits["/ehr/jwks.json"] == 2, "an unknown kid refreshes the set once"

    for _ in range(5):  # a stream of made-up kids does not hammer the key server
        assert_refused(client.get(DISCOVERY, headers=bearer(token_for(es384_key(), DISCOVERY))))
    jwks_server.sets["/ehr/jwks.json"] = jwk_set(ES, RS, rotated)
    assert_refused(client.get(DISCOVERY, headers=bearer(token_for(rotated, DISCOVERY))))
    assert jwks_server.hits["/ehr/jwks.json"] == 2


def test_rotated_key_is_picked_up_after_the_interval(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    client = auth_app(tmp_path, jwks_server, JWKS_REFRESH_MIN_INTERVAL_S=0.0).test_client()
    assert client.get(DISCOVERY, headers=bearer(token_for(ES, DISCOVERY))).status_code == 200
    rotated = rs384_key()
    jwks_server.sets["/ehr/jwks.json"] = jwk_set(ES, RS, rotated)
    assert client.get(DISCOVERY, headers=bearer(token_for(rotated, DISCOVERY))).status_code == 200
    assert jwks_server.hits["/ehr/jwks.json"] == 2


def test_unreachable_jwks_is_a_401(tmp_path: Path, jwks_server: JwksServer) -> None:
    config = issuers(jwks_server)
    config[0]["jwks_url"] = jwks_server.url("/missing.json")  # the server answers 404
    client = auth_app(tmp_path, jwks_server, TRUSTED_ISSUERS=json.dumps(config)).test_client()
    assert_refused(client.get(DISCOVERY, headers=bearer(token_for(ES, DISCOVERY))))


# --- the FHIR servers of the authenticated client ------------------------------------------------


def test_fhir_server_of_another_issuer_is_never_called(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    """Both servers are on the global allowlist; each client may only name its own."""
    app = auth_app(tmp_path, jwks_server, ALLOWED_FHIR_SERVERS=[FHIR_BASE, OTHER_FHIR])
    client = app.test_client()
    body = json.loads(
        (FIXTURES / "requests" / "order-select-missing-prefetch-keys.json").read_text()
    )
    del body["prefetch"]["conditions"]  # essential: fetched from fhirServer, or 412
    assert body["fhirServer"] == FHIR_BASE
    other_hits: list[str] = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(jwks_server.base)  # the JWKS server is real
        fhir = FakeFhirServer(mock, scenario_resources("ivig-in-dvt-resolved-history"))
        mock.add_callback(
            responses.GET,
            re.compile(re.escape(OTHER_FHIR) + ".*"),
            callback=lambda request: other_hits.append(request.url) or (200, {}, "{}"),
        )
        # INLINE_EHR may only use OTHER_FHIR: FHIR_BASE is never contacted -> 412.
        token = token_for(INLINE, SELECT, iss=INLINE_EHR, tenant="tenant-a")
        refused = client.post(SELECT, json=body, headers=bearer(token))
        assert refused.status_code == 412, refused.get_json()
        assert fhir.requests == []
        # EHR names its own server: it is fetched.
        allowed = client.post(SELECT, json=body, headers=bearer(token_for(ES, SELECT)))
        assert allowed.status_code == 200, allowed.get_json()
        assert fhir.requests, "the client's own FHIR server is used"
        # EHR names INLINE_EHR's server: never contacted either.
        body["fhirServer"] = OTHER_FHIR
        crossed = client.post(SELECT, json=body, headers=bearer(token_for(ES, SELECT)))
        assert crossed.status_code == 412, crossed.get_json()
    assert other_hits == []


def test_a_client_server_off_the_operators_allowlist_is_never_called(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    """Issue 12: in JWT mode a server on the issuer's ``fhir_servers`` but not on
    IVIG_CDS_ALLOWED_FHIR_SERVERS was called with the access token. Both lists apply."""
    app = auth_app(tmp_path, jwks_server, ALLOWED_FHIR_SERVERS=[OTHER_FHIR])  # not FHIR_BASE
    body = json.loads(
        (FIXTURES / "requests" / "order-select-missing-prefetch-keys.json").read_text()
    )
    del body["prefetch"]["conditions"]  # essential: fetched from fhirServer, or 412
    assert body["fhirServer"] == FHIR_BASE  # on EHR's fhir_servers
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(jwks_server.base)
        fhir = FakeFhirServer(mock, scenario_resources("ivig-in-dvt-resolved-history"))
        refused = app.test_client().post(SELECT, json=body, headers=bearer(token_for(ES, SELECT)))
        assert refused.status_code == 412, refused.get_json()
        assert fhir.requests == []


# --- the shared replay cache (Redis) -------------------------------------------------------------


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    with redis_database(REDIS_URL) as connection:
        yield connection


def test_replay_is_refused_across_instances_sharing_redis(
    tmp_path: Path, jwks_server: JwksServer, redis_db: redis.Redis
) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = auth_app(tmp_path / "a", jwks_server, REDIS_URL=REDIS_URL).test_client()
    second = auth_app(tmp_path / "b", jwks_server, REDIS_URL=REDIS_URL).test_client()
    payload = claims(EHR, DISCOVERY)
    key = replay_key(EHR, payload["jti"])
    try:
        token = sign(ES, payload)
        assert first.get(DISCOVERY, headers=bearer(token)).status_code == 200
        ttl = redis_db.ttl(key)
        assert 300 <= ttl <= 300 + 30 + 2, "kept for the token's lifetime plus the leeway"
        assert_refused(second.get(DISCOVERY, headers=bearer(token)), token)
        assert_refused(first.get(DISCOVERY, headers=bearer(token)), token)
    finally:
        redis_db.delete(key)


def test_without_redis_workers_sharing_the_database_refuse_a_replay(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    """Two gunicorn workers (two apps) on one database, no Redis: the second refuses the token
    the first accepted (issue 12: each worker once kept its own in-memory cache)."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    shared = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    first = auth_app(tmp_path / "a", jwks_server, DATABASE_URL=shared).test_client()
    second = auth_app(tmp_path / "b", jwks_server, DATABASE_URL=shared).test_client()
    token = token_for(ES, DISCOVERY)
    assert first.get(DISCOVERY, headers=bearer(token)).status_code == 200
    assert_refused(second.get(DISCOVERY, headers=bearer(token)), token)
    assert_refused(first.get(DISCOVERY, headers=bearer(token)), token)


def test_the_database_cache_forgets_a_key_once_it_expires(tmp_path: Path) -> None:
    now = [1000.0]
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'jti.sqlite3'}")
    cache = DatabaseReplayCache(engine, clock=lambda: now[0])
    assert cache.first_use("k", 300) and not cache.first_use("k", 300)
    now[0] += 299
    assert not cache.first_use("k", 300)
    now[0] += 2  # 301 s later: the token has expired, so its jti may be seen again
    assert cache.first_use("k", 300)


def test_the_database_cache_unavailable_is_neither_accept_nor_refuse(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'jti.sqlite3'}")
    cache = DatabaseReplayCache(engine)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP TABLE jwt_jti"))
    with pytest.raises(ReplayCacheUnavailable):
        cache.first_use("k", 300)


@pytest.mark.postgres
def test_the_database_cache_is_shared_on_postgresql() -> None:
    with postgres_schema() as url:
        engines = [sqlalchemy.create_engine(url) for _ in range(2)]
        try:
            one, other = (DatabaseReplayCache(engine) for engine in engines)
            assert one.first_use("k", 300)
            assert not other.first_use("k", 300)
        finally:
            for engine in engines:
                engine.dispose()


def test_unreachable_redis_is_a_503_not_an_accept(tmp_path: Path, jwks_server: JwksServer) -> None:
    client = auth_app(tmp_path, jwks_server, REDIS_URL="redis://127.0.0.1:1/15").test_client()
    response = client.get(DISCOVERY, headers=bearer(token_for(ES, DISCOVERY)))
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# --- configuration -------------------------------------------------------------------------------


def _issuer(**fields: Any) -> str:
    entry = {"iss": EHR, "jwks_url": "https://ehr.example.org/jwks.json", **fields}
    return json.dumps([{name: value for name, value in entry.items() if value is not None}])


@pytest.mark.parametrize(
    ("trusted", "problem"),
    [
        ("[{", "not valid JSON"),
        ("{}", "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        (_issuer(iss=None), "has no iss"),
        (_issuer(jwks_url=None), "no key source"),
        (_issuer(jwks_url="http://ehr.example.org/jwks.json"), "https"),
        (_issuer(jwks_url="ftp://127.0.0.1/jwks.json"), "https"),
        (_issuer(jku_allowlist=["http://ehr.example.org/jwks.json"]), "jku_allowlist"),
        (_issuer(jwks={"keys": []}), "not both"),
        (
            _issuer(jwks_url=None, jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]}),
            "jwks",
        ),
        (_issuer(jwks_uri="https://typo.example.org"), "unknown field"),
        (_issuer(fhir_servers="https://fhir.example.org"), "fhir_servers"),
        (_issuer(tenants="t1"), "tenants"),
        (_issuer() + "x", "not valid JSON"),
        ("@/nonexistent/issuers.json", "cannot read"),
    ],
)
def test_bad_trusted_issuers_stop_the_app_at_start_up(
    tmp_path: Path, trusted: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        make_app(tmp_path, AUTH="jwt", TRUSTED_ISSUERS=trusted, PUBLIC_BASE_URL=PUBLIC_BASE)


def test_duplicate_issuer_is_a_config_error() -> None:
    entry = json.loads(_issuer())[0]
    with pytest.raises(ConfigError, match="listed twice"):
        load_trusted_issuers(json.dumps([entry, entry]))


def test_bad_public_base_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        make_app(tmp_path, AUTH="jwt", TRUSTED_ISSUERS=_issuer(), PUBLIC_BASE_URL="cds.example.org")


def test_trusted_issuers_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(_issuer(jku_allowlist=["http://localhost:9999/jwks.json"]))
    loaded = load_trusted_issuers(f"@{path}")
    assert loaded[EHR].jku_allowlist == ("http://localhost:9999/jwks.json",)
    app = make_app(tmp_path, AUTH="jwt", TRUSTED_ISSUERS=f"@{path}", PUBLIC_BASE_URL=PUBLIC_BASE)
    assert_refused(app.test_client().get(DISCOVERY))


def test_auth_off_needs_no_token(tmp_path: Path) -> None:
    assert make_app(tmp_path).test_client().get(DISCOVERY).status_code == 200


# --- the public CDS Hooks Sandbox ----------------------------------------------------------------


def test_sandbox_jwks_is_an_es384_jwk_set_and_can_be_trusted_inline(tmp_path: Path) -> None:
    sandbox = json.loads((FIXTURES / "auth" / "sandbox-jwks.json").read_text())
    keys = parse_jwk_set(sandbox)
    assert list(keys) == [SANDBOX_KID]
    key = keys[SANDBOX_KID]
    assert (key.kty, key.alg, key.key.curve.name) == ("EC", "ES384", "secp384r1")

    trusted = json.dumps(
        [
            {
                "iss": "https://sandbox.cds-hooks.org",
                "jwks": sandbox,
                "jku_allowlist": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"],
                "fhir_servers": ["https://launch.smarthealthit.org/v/r4/fhir"],
            }
        ]
    )
    issuer = load_trusted_issuers(trusted)["https://sandbox.cds-hooks.org"]
    assert issuer.jwks is not None and SANDBOX_KID in issuer.jwks
    app = make_app(tmp_path, AUTH="jwt", TRUSTED_ISSUERS=trusted, PUBLIC_BASE_URL=PUBLIC_BASE)
    client = app.test_client()
    # A token claiming to be the Sandbox, with its kid and jku but another key: refused, and the
    # pinned inline key means the jku is not fetched (no network in this test).
    forged = es384_key(kid=SANDBOX_KID)
    token = sign(
        forged,
        claims("https://sandbox.cds-hooks.org", DISCOVERY),
        jku="https://sandbox.cds-hooks.org/.well-known/jwks.json",
    )
    assert_refused(client.get(DISCOVERY, headers=bearer(token)))


def test_a_client_configured_for_epic_gets_epic_suggestions(
    tmp_path: Path, jwks_server: JwksServer, client: FlaskClient
) -> None:
    """Card contract §9: the profile follows the trusted-issuer entry of the calling EHR."""
    entries = issuers(jwks_server)
    entries[0]["ehr_profile"] = "epic"
    (tmp_path / "epic").mkdir()
    epic = auth_app(tmp_path / "epic", jwks_server, TRUSTED_ISSUERS=json.dumps(entries))

    def answer(app_client: FlaskClient) -> tuple[list[list[str]], str]:
        response = app_client.post(
            SELECT, json=select_body(), headers=bearer(token_for(ES, SELECT))
        )
        assert response.status_code == 200, response.get_json()
        cards = response.get_json()["cards"]
        types = [
            [action["type"] for action in suggestion["actions"]]
            for card in cards
            for suggestion in card.get("suggestions", [])
        ]
        return types, " ".join(card["detail"] for card in cards)

    standard, _ = answer(client)
    assert any("update" in types for types in standard), "standard: the revised order"
    # Epic: the same revision as text (no hydration order is suggested without a site protocol,
    # so this answer has no create or delete either)
    epic_actions, detail = answer(epic.test_client())
    assert all(types in (["create"], ["delete"]) for types in epic_actions)
    assert "Enter:" in detail.replace("\\", ""), "Epic: the revised order written out as text"


def test_an_unknown_ehr_profile_is_refused_at_start_up(jwks_server: JwksServer) -> None:
    entries = issuers(jwks_server)
    entries[0]["ehr_profile"] = "cerner"
    with pytest.raises(ConfigError, match="ehr_profile must be one of standard, epic"):
        load_trusted_issuers(json.dumps(entries))
