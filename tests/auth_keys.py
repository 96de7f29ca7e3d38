"""Test helpers for JWT authentication: keys, JWK Sets, tokens, and a real local JWKS server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PUBLIC_BASE = "https://cds.example.org"


@dataclass
class Key:
    alg: str
    kid: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        to_jwk = ECAlgorithm.to_jwk if self.alg.startswith("ES") else RSAAlgorithm.to_jwk
        return {**to_jwk(self.public, as_dict=True), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def es384_key(kid: str | None = None) -> Key:
    return Key("ES384", kid or str(uuid.uuid4()), ec.generate_private_key(ec.SECP384R1()))


def rs384_key(kid: str | None = None) -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Key("RS384", kid or str(uuid.uuid4()), private)


def jwk_set(*keys: Key) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}


def claims(iss: str, path: str, **changes: Any) -> dict[str, Any]:
    """A valid payload for ``path`` (e.g. /cds-services); ``name=None`` drops a claim."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": iss,
        "aud": PUBLIC_BASE + path,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def sign(key: Key, payload: dict[str, Any], **header: Any) -> str:
    """A JWT signed by ``key``; header fields given as None are dropped (e.g. kid=None)."""
    fields = {"kid": key.kid, "typ": "JWT", **header}
    headers = {name: value for name, value in fields.items() if value is not None}
    token = jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)
    if "kid" not in headers:  # PyJWT only adds what it is given; make sure no kid slipped in
        assert "kid" not in jwt.get_unverified_header(token)
    return token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(payload: dict[str, Any], kid: str) -> str:
    """``alg: none``, as an attacker writes it."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def hs256_token(payload: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 with ``secret`` (the key confusion attack: the public key PEM as HMAC secret)."""
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving JWK Sets by path and counting hits per path."""

    def __init__(self) -> None:
        self.sets: dict[str, dict[str, Any]] = {}
        self.hits: Counter[str] = Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits[self.path] += 1
                body = owner.sets.get(self.path)
                data = json.dumps(body).encode() if body is not None else b"{}"
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
