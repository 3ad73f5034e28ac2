"""SCIM 2.0 service provider under /scim/v2 (RFC 7644): discovery (§4: ServiceProviderConfig,
ResourceTypes, Schemas), Users and Groups on the user store (accounts/provisioning.py).

Authorisation (RFC 7644 §2, RFC 6750): a Bearer access token of the client_credentials grant
carrying ``idbroker:scim``, checked like UserInfo checks its tokens (``AccessTokens.check``).
The discovery endpoints answer without a token. No or a bad token: 401; a token without the
scope or of a user: 403 - both as SCIM errors (§3.12) with a WWW-Authenticate challenge.
Answers are ``application/scim+json``; unexpected failures are a SCIM 500 without details
(logged). Every write is audited (audit.SCIM_*).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import audit
from ..accounts.provisioning import (
    GROUP_SCHEMA,
    LIST_SCHEMA,
    MAX_RESULTS,
    USER_SCHEMA,
    Provisioning,
    ScimError,
    invalid,
)
from ..oauth2.errors import OAuth2Error
from ..web import body as bodies
from ..web.proxies import client_ip
from .common import provider_of

log = logging.getLogger("idbroker.scim")

BASE = "/scim/v2"
SCOPE = "idbroker:scim"
MEDIA_TYPE = "application/scim+json"
MAX_JSON = 256 * 1024
_JSON_TYPES = ("application/scim+json", "application/json")


def answer(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(value), status_code=status, media_type=MEDIA_TYPE,
                    headers={"Cache-Control": "no-store", **(headers or {})})


def _error(err: ScimError, headers: dict[str, str] | None = None) -> Response:
    return answer(err.body(), err.status, headers)


async def _authorise(request: Request) -> str:
    """The client_id of a client_credentials token with SCOPE; _Refused otherwise."""
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise _Refused(ScimError(401, "a Bearer access token is required"), 'Bearer realm="idbroker"')
    try:
        claims = await provider_of(request).access_tokens.check(token.strip())
    except OAuth2Error:
        raise _Refused(ScimError(401, "the access token is not valid"),
                       'Bearer realm="idbroker", error="invalid_token"') from None
    client_id = str(claims.get("client_id", ""))
    if claims.get("gid") or claims.get("sub") != client_id or SCOPE not in str(claims.get("scope", "")).split():
        raise _Refused(ScimError(403, f"a client_credentials token with the {SCOPE} scope is required"),
                       f'Bearer realm="idbroker", error="insufficient_scope", scope="{SCOPE}"')
    return client_id


class _Refused(Exception):
    def __init__(self, err: ScimError, challenge: str):
        self.err, self.challenge = err, challenge


async def _json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _JSON_TYPES:
        raise ScimError(415, f"the request body must be {MEDIA_TYPE}", "invalidSyntax")
    try:
        raw = await bodies.read_body(request, MAX_JSON)
    except bodies.BodyError as exc:
        raise ScimError(413 if "large" in str(exc) else 400, str(exc), "invalidSyntax") from None
    try:
        value = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise invalid("the request body is not JSON", "invalidSyntax") from None
    if "\\u0000" in raw.decode("utf-8", "replace"):
        raise invalid("the request body must not contain NUL characters", "invalidValue")
    return value


def _paging(request: Request) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex below 1 is 1, count below 0 is 0, capped at MAX_RESULTS."""
    try:
        start = int(request.query_params.get("startIndex", "1"))
        count = int(request.query_params.get("count", str(MAX_RESULTS)))
    except ValueError:
        raise invalid("startIndex and count must be integers") from None
    return max(1, start), max(0, min(count, MAX_RESULTS))


class Scim:
    def __init__(self, request: Request, client_id: str):
        self.request, self.client_id = request, client_id
        self.provider = provider_of(request)
        self.base = self.provider.issuer + BASE
        self.service: Provisioning = self.provider.provisioning
        self.if_match = request.headers.get("if-match")

    def record(self, kind: str, **detail: Any) -> Awaitable[None]:
        return run_in_threadpool(self.provider.audit.record, kind, ip=client_ip(self.request),
                                 user_agent=self.request.headers.get("user-agent"), client_id=self.client_id,
                                 **detail)

    async def list_of(self, lister: Callable[..., Any]) -> Response:
        start, count = _paging(self.request)
        listed = await run_in_threadpool(lister, self.base, self.request.query_params.get("filter"), start, count)
        return answer({"schemas": [LIST_SCHEMA], "totalResults": listed.total, "startIndex": start,
                       "itemsPerPage": len(listed.resources), "Resources": listed.resources})


def _tagged(resource: dict[str, Any], status: int = 200) -> Response:
    headers = {"ETag": resource["meta"]["version"]}
    if status == 201:
        headers["Location"] = resource["meta"]["location"]
    return answer(resource, status, headers)


# -- Users ---------------------------------------------------------------------------------------
async def users(scim: Scim) -> Response:
    if scim.request.method == "GET":
        return await scim.list_of(scim.service.list_users)
    resource = await run_in_threadpool(scim.service.create_user, await _json(scim.request), scim.base)
    await scim.record(audit.SCIM_USER_CREATED, id=resource["id"])
    return _tagged(resource, 201)


async def user(scim: Scim) -> Response:
    sub = scim.request.path_params["id"]
    method = scim.request.method
    if method == "GET":
        _, resource = await run_in_threadpool(scim.service.get_user, sub, scim.base)
        return _tagged(resource)
    if method == "DELETE":
        deliveries = await run_in_threadpool(scim.service.delete_user, sub, scim.base, scim.if_match)
        await scim.record(audit.SCIM_USER_DELETED, id=sub)
        await scim.provider.signout.notify(deliveries)
        return Response(status_code=204)
    change = scim.service.replace_user if method == "PUT" else scim.service.patch_user
    changed = await run_in_threadpool(change, sub, await _json(scim.request), scim.base, scim.if_match)
    await scim.record(audit.SCIM_USER_UPDATED, id=sub, method=method, deactivated=changed.deactivated or None)
    await scim.provider.signout.notify(changed.deliveries)
    return _tagged(changed.resource)


# -- Groups --------------------------------------------------------------------------------------
async def groups(scim: Scim) -> Response:
    if scim.request.method == "GET":
        return await scim.list_of(scim.service.list_groups)
    resource = await run_in_threadpool(scim.service.create_group, await _json(scim.request), scim.base)
    await scim.record(audit.SCIM_GROUP_CREATED, id=resource["id"], display_name=resource["displayName"])
    return _tagged(resource, 201)


async def group(scim: Scim) -> Response:
    group_id = scim.request.path_params["id"]
    method = scim.request.method
    if method == "GET":
        return _tagged(await run_in_threadpool(scim.service.get_group, group_id, scim.base))
    if method == "DELETE":
        await run_in_threadpool(scim.service.delete_group, group_id, scim.base, scim.if_match)
        await scim.record(audit.SCIM_GROUP_DELETED, id=group_id)
        return Response(status_code=204)
    change = scim.service.replace_group if method == "PUT" else scim.service.patch_group
    resource = await run_in_threadpool(change, group_id, await _json(scim.request), scim.base, scim.if_match)
    await scim.record(audit.SCIM_GROUP_UPDATED, id=group_id, method=method)
    return _tagged(resource)


# -- discovery (RFC 7644 §4) ---------------------------------------------------------------------
def _attribute(name: str, kind: str = "string", *, required: bool = False, multi: bool = False,
               mutability: str = "readWrite", uniqueness: str = "none", case_exact: bool = False,
               subs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    attr = {"name": name, "type": kind, "multiValued": multi, "required": required, "caseExact": case_exact,
            "mutability": mutability, "returned": "default", "uniqueness": uniqueness}
    if subs:
        attr["subAttributes"] = subs
    return attr


_MULTI = [_attribute("value"), _attribute("type"), _attribute("primary", "boolean")]
SCHEMAS = {
    USER_SCHEMA: {"id": USER_SCHEMA, "name": "User", "description": "User Account", "attributes": [
        _attribute("userName", required=True, uniqueness="server"),
        _attribute("name", "complex", subs=[_attribute("formatted", mutability="readOnly"), _attribute("givenName"),
                                            _attribute("familyName"), _attribute("middleName")]),
        _attribute("displayName"), _attribute("nickName"), _attribute("locale"), _attribute("timezone"),
        _attribute("active", "boolean"),
        _attribute("emails", "complex", multi=True, subs=_MULTI),
        _attribute("phoneNumbers", "complex", multi=True, subs=_MULTI),
        _attribute("groups", "complex", multi=True, mutability="readOnly",
                   subs=[_attribute("value", mutability="readOnly"), _attribute("display", mutability="readOnly")]),
    ]},
    GROUP_SCHEMA: {"id": GROUP_SCHEMA, "name": "Group", "description": "Group", "attributes": [
        _attribute("displayName", required=True, uniqueness="server"),
        _attribute("members", "complex", multi=True,
                   subs=[_attribute("value", mutability="immutable", case_exact=True),
                         _attribute("display", mutability="readOnly")]),
    ]},
}
RESOURCE_TYPES = [
    {"id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA, "description": "User Account",
     "schemaExtensions": [{"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                           "required": False}]},
    {"id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP_SCHEMA, "description": "Group"},
]


def _with_meta(value: dict[str, Any], base: str, kind: str, path: str) -> dict[str, Any]:
    return {**value, "meta": {"resourceType": kind, "location": base + path}}


async def service_provider_config(request: Request) -> Response:
    base = provider_of(request).issuer + BASE
    return answer({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": provider_of(request).issuer + "/",
        "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS}, "changePassword": {"supported": False},
        "sort": {"supported": False}, "etag": {"supported": True},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": True,
                                   "description": f"client_credentials access token with the {SCOPE} scope"}],
        "meta": {"resourceType": "ServiceProviderConfig", "location": base + "/ServiceProviderConfig"}})


async def resource_types(request: Request) -> Response:
    base = provider_of(request).issuer + BASE
    found = [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
              **_with_meta(t, base, "ResourceType", f"/ResourceTypes/{t['id']}")} for t in RESOURCE_TYPES]
    if "id" in request.path_params:
        one = next((t for t in found if t["id"] == request.path_params["id"]), None)
        return answer(one) if one else _error(ScimError(404, "no such resource type"))
    return answer({"schemas": [LIST_SCHEMA], "totalResults": len(found), "startIndex": 1,
                   "itemsPerPage": len(found), "Resources": found})


async def schemas(request: Request) -> Response:
    base = provider_of(request).issuer + BASE
    found = [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
              **_with_meta(s, base, "Schema", f"/Schemas/{s['id']}")} for s in SCHEMAS.values()]
    if "id" in request.path_params:
        one = next((s for s in found if s["id"] == request.path_params["id"]), None)
        return answer(one) if one else _error(ScimError(404, "no such schema"))
    return answer({"schemas": [LIST_SCHEMA], "totalResults": len(found), "startIndex": 1,
                   "itemsPerPage": len(found), "Resources": found})


def _guarded(handler: Callable[[Scim], Awaitable[Response]] | Callable[[Request], Awaitable[Response]],
             discovery: bool = False) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            if discovery:  # RFC 7644 §4: what the service supports is no secret
                return await handler(request)  # type: ignore[arg-type]
            client_id = await _authorise(request)
            return await handler(Scim(request, client_id))  # type: ignore[arg-type]
        except _Refused as refused:
            return _error(refused.err, {"WWW-Authenticate": refused.challenge})
        except ScimError as err:
            return _error(err)
        except Exception:  # noqa: BLE001 - a SCIM 500 without details, the cause in the log
            log.exception("SCIM %s %s failed", request.method, request.url.path)
            return _error(ScimError(500, "the request could not be completed"))

    endpoint.__name__ = getattr(handler, "__name__", "scim")
    return endpoint


def scim_routes() -> list[Route]:
    """The routes to add to the application (app.py)."""
    return [
        Route(BASE + "/ServiceProviderConfig", _guarded(service_provider_config, True), methods=["GET"]),
        Route(BASE + "/ResourceTypes", _guarded(resource_types, True), methods=["GET"]),
        Route(BASE + "/ResourceTypes/{id}", _guarded(resource_types, True), methods=["GET"]),
        Route(BASE + "/Schemas", _guarded(schemas, True), methods=["GET"]),
        Route(BASE + "/Schemas/{id}", _guarded(schemas, True), methods=["GET"]),
        Route(BASE + "/Users", _guarded(users), methods=["GET", "POST"]),
        Route(BASE + "/Users/{id}", _guarded(user), methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route(BASE + "/Groups", _guarded(groups), methods=["GET", "POST"]),
        Route(BASE + "/Groups/{id}", _guarded(group), methods=["GET", "PUT", "PATCH", "DELETE"]),
    ]
