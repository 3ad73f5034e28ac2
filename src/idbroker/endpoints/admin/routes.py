"""The admin API mounted under /admin/api/v1: every operation of handlers.OPERATIONS behind one
gate, plus the OpenAPI document and its reference page.

The gate (RFC 6750): a Bearer access token, checked like the UserInfo endpoint checks its tokens
(`AccessTokens.check`: signature, expiry, revocation), issued by the client_credentials grant (its
subject is the client, it belongs to no user's grant) and carrying ``idbroker:admin:read`` for
GET or ``idbroker:admin:write`` for everything else (write includes read). No token: 401 with a
bare challenge (§3.1); a bad one: 401 invalid_token; a token without the scope: 403
insufficient_scope naming it.

Every call, refused or not, is audited as ``admin.call`` (method, route template, client_id,
status); bodies never are, so no secret reaches the audit trail. Unexpected failures answer 500
JSON without details (logged) - never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ...audit import ADMIN_CALL
from ...oauth2.errors import OAuth2Error
from ...web.proxies import client_ip
from ..common import provider_of
from . import spec
from .calls import ApiError, Call, json_answer
from .handlers import OPERATIONS, Operation
from .reference import render

log = logging.getLogger("idbroker.admin")


def _challenge(error: str | None = None, scope: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="idbroker"'
    if error:
        value += f', error="{error}"'
    if scope:
        value += f', scope="{scope}"'
    return {"WWW-Authenticate": value}


async def authorise(request: Request, scope: str) -> str:
    """The client_id of a client_credentials token allowed `scope`; ApiError otherwise."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise _Refused(401, {"error": "invalid_token", "error_description": "a Bearer access token is required"},
                       _challenge())
    try:
        claims = await provider_of(request).access_tokens.check(token.strip())
    except OAuth2Error:
        raise _Refused(401, {"error": "invalid_token", "error_description": "the access token is not valid"},
                       _challenge("invalid_token")) from None
    client_id = str(claims.get("client_id", ""))
    if claims.get("gid") or claims.get("sub") != client_id:
        raise _Refused(403, {"error": "insufficient_scope", "error_description":
                             "the admin API takes tokens of the client_credentials grant only"},
                       _challenge("insufficient_scope", scope), client_id)
    granted = str(claims.get("scope", "")).split()
    if scope not in granted and not (scope == spec.READ and spec.WRITE in granted):
        raise _Refused(403, {"error": "insufficient_scope", "error_description": f"the access token lacks {scope}"},
                       _challenge("insufficient_scope", scope), client_id)
    return client_id


class _Refused(Exception):
    def __init__(self, status: int, body: dict[str, str], headers: dict[str, str], client_id: str | None = None):
        self.status, self.body, self.headers, self.client_id = status, body, headers, client_id


def _endpoint(op: Operation) -> Any:
    async def endpoint(request: Request) -> Response:
        provider = provider_of(request)
        client_id = None
        try:
            client_id = await authorise(request, op.scope)
            if any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
                raise ApiError(400, "invalid_request", "query parameters must not contain NUL characters")
            call = Call(request, provider, client_id, {k: str(v) for k, v in request.path_params.items()})
            response = await op.handler(call)
        except _Refused as refused:
            client_id = refused.client_id
            response = json_answer(refused.body, refused.status, refused.headers)
        except ApiError as err:
            response = err.response()
        except Exception:  # noqa: BLE001 - a JSON 500 without details, the cause in the log
            log.exception("admin API %s %s failed", op.method, op.path)
            response = json_answer({"error": "server_error"}, 500)
        # Every call, refused ones too (client_id null without a valid token); never a body.
        await run_in_threadpool(provider.audit.record, ADMIN_CALL, ip=client_ip(request),
                                user_agent=request.headers.get("user-agent"), method=op.method,
                                path=spec.BASE + op.path, client_id=client_id, status=response.status_code)
        return response

    endpoint.__name__ = op.name
    return endpoint


def admin_routes() -> list[Route]:
    """The routes to add to the application (app.py)."""
    documents: dict[str, bytes] = {}

    def document(request: Request) -> dict[str, Any]:
        return spec.document(OPERATIONS, provider_of(request).issuer)

    async def openapi(request: Request) -> Response:
        return json_answer(document(request), headers={"Cache-Control": "public, max-age=300"})

    async def reference(request: Request) -> Response:
        issuer = provider_of(request).issuer
        if issuer not in documents:
            documents[issuer] = render(document(request)).encode()
        return HTMLResponse(documents[issuer], headers={
            "Cache-Control": "public, max-age=300",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"})

    routes = [Route(spec.BASE + "/openapi.json", openapi, methods=["GET"]),
              Route(spec.BASE + "/", reference, methods=["GET"]),
              Route(spec.BASE, reference, methods=["GET"])]
    paths: dict[str, list[Operation]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, []).append(op)
    for path, ops in paths.items():
        by_method = {op.method: _endpoint(op) for op in ops}

        async def dispatch(request: Request, by_method: dict[str, Any] = by_method) -> Response:
            return await by_method.get(request.method, by_method.get("GET"))(request)  # HEAD: as GET

        routes.append(Route(spec.BASE + path, dispatch, methods=list(by_method)))
    return routes
