"""Temporary AWS credentials for a signed-in user: STS AssumeRoleWithWebIdentity with a web
identity token this broker mints (what Cognito identity pools do with their own tokens).

Why a token of its own: the access token the client presents is for this broker (its `aud` is
the issuer); STS wants a token whose `aud` is the audience registered on the IAM OIDC identity
provider (`credentials_audience`, by default `sts.amazonaws.com`), and lives minutes. So the
issuer signs, with the broker's keys (published at /.well-known/jwks.json, which STS fetches
through the discovery document):

- `iss` the issuer, `aud` credentials_audience, `sub` the user's sub, `amr` of the sign-in,
  `iat`, `exp` = iat + 5 minutes, `jti`;
- session tags under `https://aws.amazon.com/tags` (IAM User Guide, "Passing session tags
  using AssumeRoleWithWebIdentity"): `principal_tags` {TagKey: [value]} from the claims mapped by
  `aws_session_tags` ("TagKey=claim"), and `transitive_tag_keys`. A trust policy that lets the
  role be tagged needs `sts:TagSession`.

The role comes from the rules (credentials/roles.py). The request goes to `aws_sts_endpoint`
unsigned: AssumeRoleWithWebIdentity needs no AWS credentials, the token is the proof. One
attempt, no retries (a throttled STS is the client's to retry, told so by a 503).

STS errors (AWS STS API Reference, AssumeRoleWithWebIdentity "Errors") become OAuth-style
errors: AccessDenied / IDPRejectedClaim / InvalidIdentityToken / ExpiredToken ->
`access_denied` (the trust policy or the IAM identity provider said no: the operator's
configuration), ValidationError (e.g. a duration above the role's maximum) -> `invalid_request`,
Throttling, IDPCommunicationError, 5xx and connection failures -> unavailable. Neither the token
nor the secret key is ever logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.concurrency import run_in_threadpool

from ..keys.keystore import KeyStore
from ..security import is_digits, random_token
from ..settings import CredentialSettings
from .roles import ROLE_ARN_RE, RoleRules
from .values import CredentialRefused, CredentialRequest, CredentialUnavailable, IssuedCredential

log = logging.getLogger("idbroker.credentials")

AWS_SCOPE = "aws.credentials"   # the scope an access token needs at POST /credentials/aws
TOKEN_TYPE = "urn:idbroker:params:credential-type:aws"  # a URN of ours (credentials/base.py)
TAGS_CLAIM = "https://aws.amazon.com/tags"
WEB_IDENTITY_TTL = 300
MIN_DURATION = 900            # STS's shortest DurationSeconds
STS_CONNECT_TIMEOUT = 5       # seconds to connect to STS
STS_READ_TIMEOUT = 15         # seconds for STS to answer: a hung STS is "temporarily unavailable" after that
SIGNING_ALG = "RS256"         # accepted by every STS; ES256 is too, but RS256 is the lowest common one
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]", re.ASCII)
_TAG_VALUE_BAD = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
MAX_SESSION_TAGS = 50

REFUSED = {  # STS error code -> our error code (client-visible)
    "AccessDenied": "access_denied",
    "IDPRejectedClaim": "access_denied",
    "InvalidIdentityToken": "access_denied",
    "ExpiredToken": "access_denied",
    "PackedPolicyTooLarge": "access_denied",
    "RegionDisabledException": "access_denied",
    "ValidationError": "invalid_request",
}
# STS could not do it now (its own limits, or it could not reach the issuer's JWKS): try later.
UNAVAILABLE = {"IDPCommunicationError", "Throttling", "ThrottlingException", "RequestLimitExceeded",
               "ServiceUnavailable", "InternalFailure"}
DESCRIPTIONS = {
    "AccessDenied": "AWS refused to let this user assume the role (its trust policy)",
    "IDPRejectedClaim": "AWS rejected a claim of the identity token (the role's trust policy)",
    "InvalidIdentityToken": "AWS did not accept the broker's identity token (is the issuer registered as "
                            "an IAM OIDC identity provider with this audience?)",
    "ExpiredToken": "AWS considered the broker's identity token expired (clock skew?)",
    "ValidationError": "AWS refused the request (is the duration above the role's maximum session duration?)",
}


def session_name(sub: str) -> str:
    """RoleSessionName from the sub: [\\w+=,.@-]{2,64} (STS API Reference)."""
    name = _SESSION_NAME_BAD.sub("-", sub)[:64]
    return name if len(name) >= 2 else (name + "--")[:2]


def duration(raw: str | None, maximum: int) -> int:
    if raw is None:
        return min(3600, maximum)
    if not is_digits(raw) or len(raw) > 6:
        raise CredentialRefused("invalid_request", "duration_seconds must be a whole number of seconds")
    value = int(raw)
    if not MIN_DURATION <= value <= maximum:
        raise CredentialRefused("invalid_request", f"duration_seconds must be between {MIN_DURATION} and {maximum}")
    return value


def _tag_value(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        value = ":".join(str(v) for v in value)
    if value is None or isinstance(value, dict):
        return None
    text = _TAG_VALUE_BAD.sub("_", str(value))[:256]
    return text or None


class AwsCredentials:
    token_type: ClassVar[str] = TOKEN_TYPE

    def __init__(self, rules: RoleRules, keys: KeyStore, settings: CredentialSettings, *, issuer: str):
        self.rules = rules
        self.keys = keys
        self.settings = settings
        self.issuer = issuer
        self._sts: Any = None
        self._lock = threading.Lock()

    async def issue(self, request: CredentialRequest) -> IssuedCredential:
        subject, options = request.subject, request.options
        preferred = options.get("role_arn")
        if preferred is not None and not ROLE_ARN_RE.match(preferred):
            raise CredentialRefused("invalid_request", "role_arn is not an IAM role ARN")
        seconds = duration(options.get("duration_seconds"), self.settings.credentials_max_duration)
        role = await run_in_threadpool(self.rules.choose, subject.claims, subject.client_id, preferred)
        if role is None:
            what = "the role asked for" if preferred else "any role"
            raise CredentialRefused("access_denied", f"no role rule allows this user {what}")
        token = self.web_identity_token(subject.sub, subject.claims)
        answer = await run_in_threadpool(self._assume, role, subject.sub, token, seconds)
        creds = answer["Credentials"]
        expiration = creds["Expiration"]
        if isinstance(expiration, datetime):
            expiration = expiration.astimezone(UTC)
        else:
            expiration = datetime.fromisoformat(str(expiration).replace("Z", "+00:00")).astimezone(UTC)
        body = {"Version": 1, "AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
                "SessionToken": creds["SessionToken"],
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"), "RoleArn": role}
        return IssuedCredential(TOKEN_TYPE, body, max(0, int(expiration.timestamp() - time.time())))

    def web_identity_token(self, sub: str, claims: Mapping[str, Any]) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.issuer, "aud": self.settings.credentials_audience, "sub": sub,
                                "iat": now, "nbf": now, "exp": now + WEB_IDENTITY_TTL, "jti": random_token(16)}
        if claims.get("amr"):
            body["amr"] = list(claims["amr"])
        tags: dict[str, list[str]] = {}
        for key, claim in list(self.settings.session_tags.items())[:MAX_SESSION_TAGS]:
            value = _tag_value(claims.get(claim))
            if value is not None:
                tags[key] = [value]
        if tags:
            transitive = [k for k in self.settings.aws_transitive_tag_keys if k in tags]
            body[TAGS_CLAIM] = {"principal_tags": tags, "transitive_tag_keys": transitive}
        return self.keys.sign(body, typ="JWT", alg=SIGNING_ALG)

    # -- STS --------------------------------------------------------------------------------------
    def _client(self) -> Any:
        with self._lock:
            if self._sts is None:
                import boto3
                from botocore import UNSIGNED
                from botocore.config import Config

                config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1, "mode": "standard"},
                                connect_timeout=STS_CONNECT_TIMEOUT, read_timeout=STS_READ_TIMEOUT,
                                user_agent_extra="idbroker")
                self._sts = boto3.session.Session().client(
                    "sts", region_name=self.settings.aws_region, endpoint_url=self.settings.sts_endpoint,
                    config=config, aws_access_key_id="unused", aws_secret_access_key="unused")
            return self._sts

    def _assume(self, role: str, sub: str, token: str, seconds: int) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        try:
            return self._client().assume_role_with_web_identity(
                RoleArn=role, RoleSessionName=session_name(sub), WebIdentityToken=token, DurationSeconds=seconds)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            log.info("STS AssumeRoleWithWebIdentity for %s refused: %s (HTTP %s)", role, code, status)
            if code in REFUSED:
                raise CredentialRefused(REFUSED[code], DESCRIPTIONS.get(code, "AWS refused the request")) from None
            if 400 <= status < 500 and status != 429 and code not in UNAVAILABLE and "Throttl" not in code:
                raise CredentialRefused("access_denied", "AWS refused the request") from None
            raise CredentialUnavailable(f"STS answered {code or 'an error'} (HTTP {status})") from None
        except BotoCoreError as exc:
            raise CredentialUnavailable(f"STS could not be reached: {type(exc).__name__}") from None
        except ResponseParserError:  # not a BotoCoreError: an answer that is not STS's XML (a proxy's page)
            log.info("STS AssumeRoleWithWebIdentity for %s: the answer was not STS's XML", role)
            raise CredentialUnavailable("STS answered something that is not its XML") from None
