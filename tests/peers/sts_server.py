"""A small STS of our own for the tests: the AssumeRoleWithWebIdentity action of the AWS query
protocol (form POST, XML answers), which - unlike moto's - checks what AWS checks.

It verifies the web identity token against the broker's JWKS (fetched through `jwks()` on every
call, as STS does through the issuer's discovery document): the signature (RS256/ES256 only), `iss`
(the registered identity provider), `aud` (its audience), `exp` and `nbf`, a `sub`; then the role's
trust policy, given by the test as {role ARN: {claim: value}} (each claim must equal the value or,
for a list claim such as `amr`, contain it), and DurationSeconds against the role's maximum.
Errors are AWS's XML ErrorResponse with AWS's codes and statuses; `fail_next` makes the next call
answer a given error (throttling, an outage), and `misbehave` makes every call hang or answer
garbage. Every call is recorded in `calls` (claims, role,
session name, duration) for the tests to look at.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from support import Quiet, serve

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SESSION_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-")


class StsError(Exception):
    def __init__(self, status: int, code: str, message: str, kind: str = "Sender"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


class TestSts:
    __test__ = False  # not a test class

    def __init__(self, issuer: str, jwks: Callable[[], dict[str, Any]], audience: str = "sts.amazonaws.com"):
        self.issuer = issuer
        self.jwks = jwks
        self.audience = audience
        self.trust: dict[str, dict[str, str]] = {}      # role ARN -> conditions
        self.max_duration: dict[str, int] = {}          # role ARN -> MaxSessionDuration (default 3600)
        self.calls: list[dict[str, Any]] = []
        self.fail_next: StsError | None = None
        self.misbehave: str | None = None  # "hang": answer after hang_seconds; "garbage": 200 with no XML
        self.hang_seconds = 0.0
        self._lock = threading.Lock()
        sts = self

        class Handler(Quiet):
            def do_POST(self):  # noqa: N802
                form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
                if sts.misbehave == "hang":
                    time.sleep(sts.hang_seconds)
                try:
                    body, status = sts.handle(form), 200
                except StsError as err:
                    body, status = sts.error_xml(err), err.status
                data = b"<html>502 Bad Gateway" if sts.misbehave == "garbage" else body.encode()
                self.answer(status, data, "text/xml")

        self.url, self.stop = serve(Handler)

    # -- the action ---------------------------------------------------------------------------------
    def handle(self, form: dict[str, str]) -> str:
        with self._lock:
            failure, self.fail_next = self.fail_next, None
        if failure:
            raise failure
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            raise StsError(400, "InvalidAction", f"Could not find operation {form.get('Action')}")
        role, name = form.get("RoleArn", ""), form.get("RoleSessionName", "")
        token, duration = form.get("WebIdentityToken", ""), int(form.get("DurationSeconds") or 3600)
        if not 2 <= len(name) <= 64 or set(name) - SESSION_NAME_CHARS:
            raise StsError(400, "ValidationError", "1 validation error detected: roleSessionName")
        claims = self.verify(token)
        self.calls.append({"role": role, "session_name": name, "duration": duration, "claims": claims})
        conditions = self.trust.get(role)
        if conditions is None or not all(_holds(claims.get(k), v) for k, v in conditions.items()):
            raise StsError(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        if not 900 <= duration <= self.max_duration.get(role, 3600):
            raise StsError(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration "
                                                   "set for this role.")
        expiration = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=duration)
        role_name = role.rsplit("/", 1)[-1]
        account = role.split(":")[4]
        key_id = "ASIA" + secrets.token_hex(8).upper()
        return (f'<AssumeRoleWithWebIdentityResponse xmlns="{NS}"><AssumeRoleWithWebIdentityResult>'
                f"<SubjectFromWebIdentityToken>{escape(claims['sub'])}</SubjectFromWebIdentityToken>"
                f"<Audience>{escape(self.audience)}</Audience>"
                f"<AssumedRoleUser><Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/{escape(name)}</Arn>"
                f"<AssumedRoleId>AROA{secrets.token_hex(6).upper()}:{escape(name)}</AssumedRoleId></AssumedRoleUser>"
                f"<Credentials><SessionToken>{secrets.token_urlsafe(48)}</SessionToken>"
                f"<SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>"
                f"<Expiration>{expiration.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
                f"<AccessKeyId>{key_id}</AccessKeyId></Credentials>"
                f"<Provider>{escape(self.issuer)}</Provider></AssumeRoleWithWebIdentityResult>"
                f"<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>"
                f"</AssumeRoleWithWebIdentityResponse>")

    def verify(self, token: str) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, KeySet.import_key_set(self.jwks()), algorithms=["RS256", "ES256"])
        except (JoseError, ValueError) as exc:
            raise StsError(400, "InvalidIdentityToken", f"Couldn't verify the token's signature ({exc})") from None
        claims = decoded.claims
        if claims.get("iss") != self.issuer:
            raise StsError(400, "InvalidIdentityToken", "No OpenIDConnect provider found in your account for "
                                                        f"{claims.get('iss')}")
        aud = claims.get("aud")
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise StsError(400, "InvalidIdentityToken", "Incorrect token audience")
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise StsError(400, "ExpiredToken", "Token expired")
        if claims.get("nbf", 0) > now + 60:
            raise StsError(400, "InvalidIdentityToken", "Token not yet valid")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise StsError(400, "InvalidIdentityToken", "The token has no sub")
        return claims

    @staticmethod
    def error_xml(err: StsError) -> str:
        return (f'<ErrorResponse xmlns="{NS}"><Error><Type>{err.kind}</Type><Code>{escape(err.code)}</Code>'
                f"<Message>{escape(err.message)}</Message></Error><RequestId>{secrets.token_hex(16)}</RequestId>"
                f"</ErrorResponse>")


def _holds(value: Any, wanted: str) -> bool:
    if isinstance(value, list):
        return wanted in value
    return value == wanted
