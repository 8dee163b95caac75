"""A small OpenID Connect provider over real HTTP, for the console's single sign-on tests.

Discovery, JWKS, an authorization endpoint that signs in whoever the test names (no login
page), a token endpoint that checks the client's secret, the code, the redirect URI and the
PKCE verifier, and ID tokens signed with RS256. ``forge_with`` makes it sign with another key
(a token the console must refuse).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask, abort, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server


@dataclass
class Person:
    username: str
    groups: list[str] = field(default_factory=list)
    subject: str = field(default_factory=lambda: secrets.token_hex(8))


class OidcProvider:
    """The provider, serving on 127.0.0.1 in a thread until ``stop()``."""

    def __init__(self, client_id: str = "fhirgen-console", client_secret: str = "s3cret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.signing_key = self.key
        self.person: Person | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.app = self._app()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> OidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def forge_with_another_key(self) -> None:
        self.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})

    def _id_token(self, grant: dict[str, Any]) -> str:
        person: Person = grant["person"]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": person.subject,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "preferred_username": person.username,
            "groups": person.groups,
        }
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.signing_key)

    def _app(self) -> Flask:
        app = Flask("oidc-provider")

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=self.issuer,
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
            )

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize() -> Any:
            args = request.args
            if args.get("client_id") != self.client_id or args.get("response_type") != "code":
                abort(400)
            if args.get("code_challenge_method") != "S256" or self.person is None:
                abort(400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "person": self.person,
                "nonce": args.get("nonce"),
                "challenge": args["code_challenge"],
                "redirect_uri": args["redirect_uri"],
            }
            query = urlencode({"code": code, "state": args.get("state", "")})
            return redirect(f"{args['redirect_uri']}?{query}")

        @app.post("/token")
        def token() -> Any:
            auth = request.authorization
            if not auth or (auth.username, auth.password) != (self.client_id, self.client_secret):
                return jsonify(error="invalid_client"), 401
            grant = self.codes.pop(request.form.get("code", ""), None)
            if grant is None or request.form.get("redirect_uri") != grant["redirect_uri"]:
                return jsonify(error="invalid_grant"), 400
            verifier = request.form.get("code_verifier", "").encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if digest.decode() != grant["challenge"]:
                return jsonify(error="invalid_grant", error_description="PKCE"), 400
            return jsonify(
                access_token=secrets.token_urlsafe(16),
                token_type="Bearer",
                expires_in=300,
                id_token=self._id_token(grant),
            )

        return app
