"""POST /credentials/aws: temporary AWS credentials for the user of an access token
(credentials/aws.py), in the JSON the AWS SDKs' `credential_process` reads.

Request: `Authorization: Bearer <access token>` (RFC 6750 §2.1) carrying the scope
`aws.credentials`, and optionally, form-encoded, `role_arn` (a preferred role, granted only when a
role rule allows it) and `duration_seconds` (900 .. credentials_max_duration).

Errors (RFC 6750 §3.1, RFC 6749 §5.2 style JSON, never cached): no or a bad/expired/revoked token
-> 401 invalid_token with WWW-Authenticate; a token or client without the scope -> 403
insufficient_scope; bad parameters -> 400 invalid_request; no rule allows it or AWS refuses -> 403
access_denied; STS unreachable or throttling -> 503 temporarily_unavailable. Every issuance and
refusal for a known user is audited, without the tokens or keys.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import audit
from ..credentials.aws import AWS_SCOPE
from ..credentials.base import CredentialRefused, CredentialRequest, CredentialUnavailable, Subject
from ..credentials.roles import claims_of
from ..oauth2.errors import (
    AccessDeniedError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    OAuth2Error,
    TemporarilyUnavailableError,
)
from ..web.proxies import client_ip
from .common import json_response, log, provider_of, read_form

OPTIONS = ("role_arn", "duration_seconds")
STATUS = {"access_denied": 403, "invalid_request": 400}


def _challenge(err: OAuth2Error | None) -> dict[str, str]:
    """RFC 6750 §3: the challenge, with the error once a token was presented."""
    if err is None:
        return {"WWW-Authenticate": 'Bearer realm="idbroker"'}
    if not isinstance(err, InvalidTokenError | InsufficientScopeError):
        return {}
    value = f'Bearer realm="idbroker", error="{err.error}", error_description="{err.safe_description}"'
    if isinstance(err, InsufficientScopeError):
        value += f', scope="{AWS_SCOPE}"'
    return {"WWW-Authenticate": value}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidRequestError("the Authorization header must use the Bearer scheme")
    return value.strip()


async def aws_credentials_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    ip = client_ip(request)
    user_id = client_id = asked = None

    def record(kind: str, **detail: object) -> None:
        provider.audit.record(kind, user_id=user_id, ip=ip, user_agent=request.headers.get("user-agent"),
                              client_id=client_id, **detail)

    try:
        token = _bearer(request)
        if token is None:
            return json_response({"error": "invalid_token", "error_description": "an access token is required"},
                                 401, _challenge(None))
        claims = await provider.access_tokens.check(token, load_user=True)
        user, client_id = claims["_user"], claims.get("client_id")
        user_id = user.id
        if AWS_SCOPE not in claims.get("scope", "").split():
            raise InsufficientScopeError(f"the access token lacks the {AWS_SCOPE} scope")
        client = await run_in_threadpool(provider.clients.get, client_id) if client_id else None
        if client is None or AWS_SCOPE not in (client.scopes or []):
            raise InsufficientScopeError(f"the client is not allowed the {AWS_SCOPE} scope")
        form = await read_form(request) if request.headers.get("content-type") else {}
        unknown = set(form) - set(OPTIONS)
        if unknown:
            raise InvalidRequestError(f"unknown parameter {sorted(unknown)[0]!r}")
        asked = form.get("role_arn")
        subject = Subject(sub=user.sub, client_id=client_id, scopes=frozenset(claims.get("scope", "").split()),
                          claims={**claims_of(user, claims.get("idp")), "amr": claims.get("amr") or []})
        try:
            issued = await provider.aws_credentials.issue(CredentialRequest(subject, options=form))
        except CredentialRefused as exc:
            raise (AccessDeniedError if exc.error == "access_denied" else InvalidRequestError)(
                exc.description, status_code=STATUS.get(exc.error, 400)) from None
        except CredentialUnavailable as exc:
            raise TemporarilyUnavailableError("AWS STS is unavailable; try again later", detail=str(exc)) from None
    except OAuth2Error as err:
        if err.detail:
            log.info("%s: %s (%s)", err.error, err.description, err.detail)
        if user_id is not None:
            await run_in_threadpool(record, audit.AWS_CREDENTIALS_REFUSED, role_arn=asked, error=err.error)
        status = 403 if isinstance(err, AccessDeniedError) else err.status_code
        headers = _challenge(err)
        if isinstance(err, TemporarilyUnavailableError):
            headers["Retry-After"] = "5"
        return json_response(err.as_dict(), status, headers)
    await run_in_threadpool(record, audit.AWS_CREDENTIALS_ISSUED, role_arn=issued.body["RoleArn"],
                            expires_in=issued.expires_in)
    return json_response(dict(issued.body))
