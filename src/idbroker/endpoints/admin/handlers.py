"""The admin API's operations: one handler each, listed in OPERATIONS with the method, path,
scope and OpenAPI operation object (spec.py). Handlers call the same service functions as the CLI
(accounts/administration.py, the registries); none of them returns a secret, except the client
secret once, when it is made."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...accounts import administration as admin
from ...accounts.users import EMAIL_RE, PROFILE_FIELDS, UserError
from ...clients.metadata import ClientMetadata, InvalidClientMetadata
from ...clients.registry import FIELDS as CLIENT_FIELDS
from ...clients.registry import ClientExists, ClientNotFound, metadata_of
from ...federation.registry import InvalidUpstream, UpstreamNotFound
from ...migration.sources import InvalidSource, SourceNotFound
from ...store.models import Client, LegacySource, UpstreamProvider, User
from . import bulk, spec
from .calls import Call, conflict, etag, int_param, invalid, json_answer, not_found, too_long

Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str          # under spec.BASE, Starlette syntax ({id})
    handler: Handler
    doc: dict[str, Any]

    @property
    def scope(self) -> str:
        return spec.READ if self.method == "GET" else spec.WRITE


async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(fn, *args, **kwargs)


# -- clients ---------------------------------------------------------------------------------------
def client_json(row: Client) -> dict[str, Any]:
    return {**dataclasses.asdict(metadata_of(row)), "has_secret": bool(row.secret_hash),
            "created_at": row.created_at, "updated_at": row.updated_at}


def _client_tag(row: Client) -> str:
    return etag(row)


_TYPES = {f.name: f.type for f in dataclasses.fields(ClientMetadata)}


def check_types(values: dict[str, Any], types: dict[str, str]) -> list[tuple[str, str]]:
    """Field paths whose JSON value does not have the type the field is declared with."""
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        declared = types.get(name)
        if declared is None:
            problems.append((name, "unknown field"))
            continue
        optional = declared.endswith("| None")
        base = declared.removesuffix(" | None").strip()
        if value is None:
            if not optional:
                problems.append((name, "must not be null"))
        elif base == "str" and not isinstance(value, str):
            problems.append((name, "must be a string"))
        elif base == "bool" and not isinstance(value, bool):
            problems.append((name, "must be true or false"))
        elif base == "int" and (not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**31):
            problems.append((name, "must be an integer (32 bits)"))
        elif base == "dict" and not isinstance(value, dict):
            problems.append((name, "must be an object"))
        elif base == "list[str]":
            if not isinstance(value, list):
                problems.append((name, "must be an array of strings"))
            else:
                problems += [(f"{name}[{i}]", "must be a string") for i, v in enumerate(value)
                             if not isinstance(v, str)]
    return problems


def metadata_problems(exc: InvalidClientMetadata, values: dict[str, Any]) -> list[tuple[str, str]]:
    """The registry's messages with the path of the field (or list item) each one is about."""
    out = []
    for message in exc.problems:
        path = ""
        for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types", "response_types", "scopes",
                     "exchange_audiences", "idps"):
            for i, item in enumerate(values.get(name) or []):
                if isinstance(item, str) and item and repr(item) in message or f" {item} " in f" {message} ":
                    path = f"{name}[{i}]"
                    break
            if path:
                break
        if not path:
            path = next((f for f in sorted(CLIENT_FIELDS, key=len, reverse=True) if f in message), "")
        if not path and "redirect URI" in message:
            path = "post_logout_redirect_uris" if "post-logout" in message else "redirect_uris"
        out.append((path, message))
    return out


async def clients_list(call: Call) -> Response:
    rows = await run(call.provider.clients.list)
    return json_answer({"items": [client_json(r) for r in rows]})


async def _client(call: Call) -> Client:
    client_id = call.params["client_id"]
    if "\x00" in client_id or len(client_id) > 255:
        raise not_found("client")

    def read() -> Client | None:
        with call.provider.db.session(write=False) as s:
            return s.get(Client, client_id)

    row = await run(read)
    if row is None:
        raise not_found("client")
    return row


async def clients_get(call: Call) -> Response:
    row = await _client(call)
    return json_answer(client_json(row), headers={"ETag": _client_tag(row)})


async def clients_create(call: Call) -> Response:
    values = await call.json()
    problems = check_types(values, _TYPES) + too_long(values, Client.__table__)
    if "client_id" not in values:
        problems.append(("client_id", "is required"))
    if problems:
        raise invalid(problems)
    try:
        row, secret = await run(call.provider.clients.create, ClientMetadata(**values))
    except ClientExists as exc:
        raise conflict(str(exc)) from None
    except InvalidClientMetadata as exc:
        raise invalid(metadata_problems(exc, values)) from None
    return json_answer({**client_json(row), "client_secret": secret}, 201,
                       {"ETag": _client_tag(row), "Location": f"{spec.BASE}/clients/{quote(row.client_id, safe='')}"})


async def clients_update(call: Call) -> Response:
    values = await call.json()
    problems = check_types(values, {k: v for k, v in _TYPES.items() if k != "client_id"}) + \
        too_long(values, Client.__table__)
    if problems:
        raise invalid(problems)
    current = await _client(call)
    call.check_if_match(_client_tag(current))
    try:
        row, secret = await run(call.provider.clients.update, current.client_id, values,
                                precondition=lambda locked: call.check_if_match(_client_tag(locked)))
    except ClientNotFound:
        raise not_found("client") from None
    except InvalidClientMetadata as exc:
        raise invalid(metadata_problems(exc, values)) from None
    out = client_json(row)
    if secret:  # it became confidential: its first secret, shown once
        out["client_secret"] = secret
    return json_answer(out, headers={"ETag": _client_tag(row)})


async def clients_delete(call: Call) -> Response:
    current = await _client(call)
    call.check_if_match(_client_tag(current))
    try:
        await run(call.provider.clients.remove, current.client_id,
                  lambda locked: call.check_if_match(_client_tag(locked)))
    except ClientNotFound:
        raise not_found("client") from None
    return Response(status_code=204)


async def clients_rotate_secret(call: Call) -> Response:
    current = await _client(call)
    call.check_if_match(_client_tag(current))
    if not current.secret_hash:
        raise conflict("this client authenticates without a secret")
    row, secret = await run(call.provider.clients.update, current.client_id, {}, new_secret=True,
                            precondition=lambda locked: call.check_if_match(_client_tag(locked)))
    return json_answer({**client_json(row), "client_secret": secret}, headers={"ETag": _client_tag(row)})


# -- users -----------------------------------------------------------------------------------------
def user_json(u: User) -> dict[str, Any]:
    return {"id": u.sub, "email": u.email, "email_verified": u.email_verified,
            **{f: getattr(u, f) for f in PROFILE_FIELDS}, "phone_number_verified": u.phone_number_verified,
            "disabled": u.disabled, "terms_version": u.terms_version, "terms_accepted_at": u.terms_accepted_at,
            "created_at": u.created_at, "updated_at": u.updated_at}


def _user_tag(u: User) -> str:
    return etag(u)


async def _user(call: Call) -> User:
    user = await run(admin.find_user, call.provider.db, call.params["user_id"])
    if user is None:
        raise not_found("user")
    return user


async def users_search(call: Call) -> Response:
    q = call.query
    status = q.get("status")
    if status not in (None, *admin.STATUSES):
        raise invalid([("status", "must be active or disabled")])
    limit = int_param(call, "limit", admin.DEFAULT_LIMIT, 1, admin.MAX_LIMIT)
    try:
        page = await run(admin.search_users, call.provider.db, email=q.get("email") or None,
                         name=q.get("name") or None, group=q.get("group") or None, status=status,
                         cursor=q.get("cursor") or None, limit=limit)
    except admin.BadCursor as exc:
        raise invalid([("cursor", str(exc))]) from None
    return json_answer({"items": [user_json(u) for u in page.items], "next_cursor": page.next_cursor})


async def users_get(call: Call) -> Response:
    user = await _user(call)
    return json_answer(user_json(user), headers={"ETag": _user_tag(user)})


_USER_INPUT = {"email": "str", "password": "str", "email_verified": "bool"}


async def users_create(call: Call) -> Response:
    values = await call.json()
    problems = [(k, "unknown field") for k in values if k not in _USER_INPUT and k not in PROFILE_FIELDS]
    problems += check_types({k: v for k, v in values.items() if k in _USER_INPUT}, _USER_INPUT)
    email = values.get("email")
    if not isinstance(email, str) or len(email) > 320 or not EMAIL_RE.match(email.strip().lower()):
        problems.append(("email", "must be an email address"))
    profile = {k: v for k, v in values.items() if k in PROFILE_FIELDS}
    try:
        admin.update_user_check(profile)
    except admin.UserChangeError as exc:
        problems += exc.problems
    if problems:
        raise invalid(problems)
    if await run(admin.find_user, call.provider.db, email) is not None:
        raise conflict("a user with this email address exists")
    try:
        user = await run(call.provider.users.create, email, values.get("password"),
                         email_verified=bool(values.get("email_verified")), **profile)
    except UserError as exc:
        if "already exists" in str(exc):
            raise conflict("a user with this email address exists") from None
        raise invalid([("password", str(exc))]) from None
    return json_answer(user_json(user), 201, {"ETag": _user_tag(user),
                                               "Location": f"{spec.BASE}/users/{quote(user.sub, safe='')}"})


async def users_update(call: Call) -> Response:
    values = await call.json()
    user = await _user(call)
    call.check_if_match(_user_tag(user))
    try:  # and again on the locked row, in the writing transaction
        row = await run(admin.update_user, call.provider.db, user.id, values,
                        lambda locked: call.check_if_match(_user_tag(locked)))
    except admin.UserChangeError as exc:
        raise invalid(exc.problems) from None
    if row is None:
        raise not_found("user")
    if values.get("disabled") is True and not user.disabled:  # a disabled user keeps no session or token
        await call.provider.signout.notify(await run(admin.sign_out_everywhere, call.provider.accounts, row))
    return json_answer(user_json(row), headers={"ETag": _user_tag(row)})


async def users_delete(call: Call) -> Response:
    user = await _user(call)
    call.check_if_match(_user_tag(user))
    deliveries = await run(call.provider.accounts.delete_account, user,
                           lambda locked: call.check_if_match(_user_tag(locked)))
    await call.provider.signout.notify(deliveries)
    return Response(status_code=204)


async def users_signout(call: Call) -> Response:
    user = await _user(call)
    sessions = await run(call.provider.accounts.live_sessions, user.id)
    deliveries = await run(admin.sign_out_everywhere, call.provider.accounts, user)
    await call.provider.signout.notify(deliveries)
    return json_answer({"sessions_ended": len(sessions), "applications_told": len(deliveries)})


async def users_reset_mfa(call: Call) -> Response:
    user = await _user(call)
    removed = await run(admin.reset_mfa, call.provider.db, user.id)
    return json_answer({"factors_removed": removed})


# -- sessions --------------------------------------------------------------------------------------
def session_json(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in ("sid", "auth_time", "amr", "acr", "idp", "created_at", "expires_at",
                                         "user_agent", "ip")}


async def sessions_list(call: Call) -> Response:
    user = await _user(call)
    rows = await run(call.provider.accounts.live_sessions, user.id)
    return json_answer({"items": [session_json(r) for r in rows]})


async def sessions_delete(call: Call) -> Response:
    user = await _user(call)
    sid = call.params["sid"]
    rows = await run(call.provider.accounts.live_sessions, user.id)
    if sid not in {r.sid for r in rows}:
        raise not_found("session")
    await call.provider.signout.notify(await run(call.provider.accounts.end_session, user, sid))
    return Response(status_code=204)


# -- upstream providers and migration sources ---------------------------------------------------
def upstream_json(registry: Any, row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "name": row.name, "options": row.options,
            "secret_names": registry.secret_names(row), "logo_uri": row.logo_uri, "trust_email": row.trust_email,
            "trust_mfa": row.trust_mfa, "domains": row.domains, "created_at": row.created_at,
            "updated_at": row.updated_at}


def source_json(registry: Any, row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "position": row.position, "options": row.options,
            "secret_names": registry.secret_names(row), "enabled": row.enabled, "created_at": row.created_at,
            "updated_at": row.updated_at}


_UPSTREAM_INPUT = {"id": "str", "kind": "str", "name": "str", "options": "dict", "secrets": "dict",
                   "logo_uri": "str | None", "trust_email": "bool", "trust_mfa": "bool", "domains": "list[str]"}
_SOURCE_INPUT = {"id": "str", "kind": "str", "options": "dict", "position": "int", "enabled": "bool"}


def _registry_problem(message: str, fields: list[str]) -> list[tuple[str, str]]:
    path = next((f for f in fields if message.startswith(f) or f" {f}" in message), "")
    return [(path, message)]


async def _upstream(call: Call) -> Any:
    row = await run(call.provider.upstreams.row, call.params["upstream_id"])
    if row is None:
        raise not_found("upstream provider")
    return row


async def upstreams_list(call: Call) -> Response:
    reg = call.provider.upstreams
    return json_answer({"items": [upstream_json(reg, r) for r in await run(reg.list)]})


async def upstreams_get(call: Call) -> Response:
    row = await _upstream(call)
    return json_answer(upstream_json(call.provider.upstreams, row),
                       headers={"ETag": etag(row)})


async def upstreams_create(call: Call) -> Response:
    values = await call.json()
    problems = check_types(values, _UPSTREAM_INPUT) + too_long(values, UpstreamProvider.__table__)
    problems += [(k, "is required") for k in ("id", "kind", "name") if k not in values]
    if problems:
        raise invalid(problems)
    reg = call.provider.upstreams
    if await run(reg.row, values["id"]) is not None:
        raise conflict(f"provider {values['id']!r} already exists")
    try:
        row = await run(reg.add, values.pop("id"), values.pop("kind"), values.pop("name"), **values)
    except InvalidUpstream as exc:
        if "already exists" in str(exc):
            raise conflict(str(exc)) from None
        raise invalid(_registry_problem(str(exc), [*_UPSTREAM_INPUT, *values.get("options", {})])) from None
    return json_answer(upstream_json(reg, row), 201, {"ETag": etag(row)})


async def upstreams_update(call: Call) -> Response:
    values = await call.json()
    problems = check_types(values, {k: v for k, v in _UPSTREAM_INPUT.items() if k not in ("id", "kind")}) + \
        too_long(values, UpstreamProvider.__table__)
    if problems:
        raise invalid(problems)
    row = await _upstream(call)
    call.check_if_match(etag(row))
    if "logo_uri" in values and values["logo_uri"] is None:
        values["logo_uri"] = ""
    try:
        row = await run(call.provider.upstreams.update, row.id, **values,
                        precondition=lambda locked: call.check_if_match(etag(locked)))
    except UpstreamNotFound:
        raise not_found("upstream provider") from None
    except InvalidUpstream as exc:
        raise invalid(_registry_problem(str(exc), [*_UPSTREAM_INPUT, *values.get("options", {})])) from None
    return json_answer(upstream_json(call.provider.upstreams, row),
                       headers={"ETag": etag(row)})


async def upstreams_delete(call: Call) -> Response:
    row = await _upstream(call)
    call.check_if_match(etag(row))
    try:
        await run(call.provider.upstreams.remove, row.id, lambda locked: call.check_if_match(etag(locked)))
    except UpstreamNotFound:
        raise not_found("upstream provider") from None
    return Response(status_code=204)


async def _source(call: Call) -> Any:
    row = await run(call.provider.migration_sources.row, call.params["source_id"])
    if row is None:
        raise not_found("migration source")
    return row


async def sources_list(call: Call) -> Response:
    reg = call.provider.migration_sources
    return json_answer({"items": [source_json(reg, r) for r in await run(reg.list)]})


async def sources_get(call: Call) -> Response:
    row = await _source(call)
    return json_answer(source_json(call.provider.migration_sources, row),
                       headers={"ETag": etag(row)})


async def sources_create(call: Call) -> Response:
    values = await call.json()
    problems = check_types(values, _SOURCE_INPUT) + too_long(values, LegacySource.__table__)
    problems += [(k, "is required") for k in ("id", "kind") if k not in values]
    if problems:
        raise invalid(problems)
    reg = call.provider.migration_sources
    if await run(reg.row, values["id"]) is not None:
        raise conflict(f"source {values['id']!r} already exists")
    try:
        row = await run(reg.add, values.pop("id"), values.pop("kind"), values.pop("options", None), **values)
    except InvalidSource as exc:
        if "already exists" in str(exc):
            raise conflict(str(exc)) from None
        raise invalid(_registry_problem(str(exc), list(_SOURCE_INPUT))) from None
    return json_answer(source_json(reg, row), 201, {"ETag": etag(row)})


async def sources_update(call: Call) -> Response:
    values = await call.json()
    problems = check_types(values, {k: v for k, v in _SOURCE_INPUT.items() if k not in ("id", "kind")})
    if problems:
        raise invalid(problems)
    row = await _source(call)
    call.check_if_match(etag(row))
    try:
        row = await run(call.provider.migration_sources.update, row.id, values.pop("options", None), **values,
                        precondition=lambda locked: call.check_if_match(etag(locked)))
    except SourceNotFound:
        raise not_found("migration source") from None
    except InvalidSource as exc:
        raise invalid(_registry_problem(str(exc), list(_SOURCE_INPUT))) from None
    return json_answer(source_json(call.provider.migration_sources, row),
                       headers={"ETag": etag(row)})


async def sources_delete(call: Call) -> Response:
    row = await _source(call)
    call.check_if_match(etag(row))
    try:
        await run(call.provider.migration_sources.remove, row.id, lambda locked: call.check_if_match(etag(locked)))
    except SourceNotFound:
        raise not_found("migration source") from None
    return Response(status_code=204)


# -- signing keys ----------------------------------------------------------------------------------
def key_json(view: Any, state: str) -> dict[str, Any]:
    return {"kid": view.kid, "alg": view.alg, "state": state, "activate_at": view.activate_at,
            "retire_after": view.retire_after, "public_jwk": view.public_jwk}


async def keys_list(call: Call) -> Response:
    rows = await run(call.provider.keys.list)
    return json_answer({"items": [key_json(k, st) for k, st in rows]})


async def keys_rotate(call: Call) -> Response:
    values = await call.json() if call.request.headers.get("content-length", "0") != "0" else {}
    problems = check_types(values, {"alg": "str", "immediately": "bool"})
    if values.get("alg") not in (None, "ES256", "RS256"):
        problems.append(("alg", "must be ES256 or RS256"))
    if problems:
        raise invalid(problems)
    keys = call.provider.keys
    view = await run(keys.rotate, values.get("alg"), immediately=bool(values.get("immediately")))
    state = next((st for k, st in await run(keys.list) if k.kid == view.kid), "next")
    return json_answer(key_json(view, state), 201)


# -- audit events and terms ------------------------------------------------------------------------
async def audit_list(call: Call) -> Response:
    q = call.query
    limit = int_param(call, "limit", admin.DEFAULT_LIMIT, 1, admin.MAX_LIMIT)
    moments = {}
    for name in ("since", "until"):
        if q.get(name):
            try:
                moments[name] = admin.parse_moment(q[name])
            except ValueError as exc:
                raise invalid([(name, str(exc))]) from None
    user_id = None
    subs: dict[int, str] = {}
    if q.get("user"):
        user = await run(admin.find_user, call.provider.db, q["user"])
        if user is None:
            return json_answer({"items": [], "next_cursor": None})
        user_id, subs = user.id, {user.id: user.sub}
    try:
        page = await run(admin.search_events, call.provider.db, user_id=user_id, kind=q.get("kind") or None,
                         cursor=q.get("cursor") or None, limit=limit, **moments)
    except admin.BadCursor as exc:
        raise invalid([("cursor", str(exc))]) from None
    missing = {e.user_id for e in page.items if e.user_id is not None} - set(subs)
    if missing:
        subs |= await run(_subs, call.provider.db, missing)
    return json_answer({"items": [{"id": e.id, "kind": e.kind, "user_id": subs.get(e.user_id), "ip": e.ip,
                                   "user_agent": e.user_agent, "detail": e.detail, "created_at": e.created_at}
                                  for e in page.items], "next_cursor": page.next_cursor})


def _subs(db: Any, ids: set[int]) -> dict[int, str]:
    with db.session(write=False) as s:
        return {row[0]: row[1] for row in s.execute(select(User.id, User.sub).where(User.id.in_(ids)))}


async def terms_list(call: Call) -> Response:
    """The version users are asked to accept now, and every version users have accepted."""
    current = call.provider.settings.terms.terms_version or None

    def counts() -> list[tuple[str, int]]:
        with call.provider.db.session(write=False) as s:
            query = select(User.terms_version, func.count()).where(User.terms_version.is_not(None)) \
                .group_by(User.terms_version)
            return [(r[0], r[1]) for r in s.execute(query)]

    accepted = dict(await run(counts))
    versions = sorted(set(accepted) | ({current} if current else set()))
    return json_answer({"current": current, "versions": [
        {"version": v, "accepted_by": accepted.get(v, 0), "current": v == current} for v in versions]})


# -- the table --------------------------------------------------------------------------------------
P, Q = spec.path_param, spec.query_param
CLIENT_ID = P("client_id", "The client's client_id.")
USER_ID = P("user_id", "The user's id (its sub) or email address.")
UPSTREAM_ID, SOURCE_ID = P("upstream_id", "The provider's id."), P("source_id", "The source's id.")
op = spec.operation

OPERATIONS: list[Operation] = [
    Operation("listClients", "GET", "/clients", clients_list, op("List clients", result="ClientList")),
    Operation("createClient", "POST", "/clients", clients_create, op(
        "Register a client; a confidential one's secret is in the answer, once", ok=201, result="ClientWithSecret",
        body="ClientInput", errors=(409,))),
    Operation("getClient", "GET", "/clients/{client_id}", clients_get, op(
        "Read a client", result="Client", params=[CLIENT_ID], errors=(404,), etag=True)),
    Operation("updateClient", "PATCH", "/clients/{client_id}", clients_update, op(
        "Change a client's metadata", result="ClientWithSecret", body="ClientChanges",
        params=[CLIENT_ID, spec.IF_MATCH], errors=(404, 412), etag=True)),
    Operation("deleteClient", "DELETE", "/clients/{client_id}", clients_delete, op(
        "Remove a client", ok=204, params=[CLIENT_ID, spec.IF_MATCH], errors=(404, 412))),
    Operation("rotateClientSecret", "POST", "/clients/{client_id}/secret", clients_rotate_secret, op(
        "Give a confidential client a new secret (the old one stops working)", result="ClientWithSecret",
        params=[CLIENT_ID, spec.IF_MATCH], errors=(404, 409, 412), etag=True)),
    Operation("searchUsers", "GET", "/users", users_search, op(
        "Search users (cursor paging by id)", result="UserPage", errors=(400, 422), params=[
            Q("email", "Part of the email address (case-insensitive)."),
            Q("name", "Part of the given, family, nick or preferred user name."),
            Q("group", "A group the user is in."),
            Q("status", "active or disabled.", {"type": "string", "enum": ["active", "disabled"]}),
            spec.CURSOR, spec.LIMIT])),
    Operation("createUser", "POST", "/users", users_create, op(
        "Create a user", ok=201, result="User", body="UserInput", errors=(409,), etag=True)),
    # Before /users/{user_id}: the first route whose path matches answers.
    Operation("importUsers", "POST", "/users/import", bulk.users_import, bulk.IMPORT_DOC),
    Operation("exportUsers", "GET", "/users/export", bulk.users_export, bulk.EXPORT_DOC),
    Operation("getUser", "GET", "/users/{user_id}", users_get, op(
        "Read a user", result="User", params=[USER_ID], errors=(404,), etag=True)),
    Operation("updateUser", "PATCH", "/users/{user_id}", users_update, op(
        "Change a user's profile, groups, email_verified or disabled (disabling signs the user out)",
        result="User", body="UserChanges", params=[USER_ID, spec.IF_MATCH], errors=(404, 412), etag=True)),
    Operation("deleteUser", "DELETE", "/users/{user_id}", users_delete, op(
        "Delete a user (signed out everywhere first)", ok=204, params=[USER_ID, spec.IF_MATCH], errors=(404, 412))),
    Operation("signOutUser", "POST", "/users/{user_id}/signout", users_signout, op(
        "End every session and revoke every grant of the user", result="SignOutResult", params=[USER_ID],
        errors=(404,))),
    Operation("resetUserMfa", "POST", "/users/{user_id}/reset-mfa", users_reset_mfa, op(
        "Remove every second factor, recovery code and remembered device", result="MfaResetResult",
        params=[USER_ID], errors=(404,))),
    Operation("listUserSessions", "GET", "/users/{user_id}/sessions", sessions_list, op(
        "The user's live sessions", result="SessionList", params=[USER_ID], errors=(404,))),
    Operation("deleteUserSession", "DELETE", "/users/{user_id}/sessions/{sid}", sessions_delete, op(
        "End one session", ok=204, params=[USER_ID, P("sid", "The session's sid.")], errors=(404,))),
    Operation("listUpstreams", "GET", "/upstreams", upstreams_list, op("List upstream providers",
                                                                        result="UpstreamList")),
    Operation("createUpstream", "POST", "/upstreams", upstreams_create, op(
        "Add an upstream provider", ok=201, result="Upstream", body="UpstreamInput", errors=(409,))),
    Operation("getUpstream", "GET", "/upstreams/{upstream_id}", upstreams_get, op(
        "Read an upstream provider (secret names only)", result="Upstream", params=[UPSTREAM_ID], errors=(404,),
        etag=True)),
    Operation("updateUpstream", "PATCH", "/upstreams/{upstream_id}", upstreams_update, op(
        "Change an upstream provider (options and secrets merged; an empty value removes one)",
        result="Upstream", body="UpstreamChanges", params=[UPSTREAM_ID, spec.IF_MATCH], errors=(404, 412))),
    Operation("deleteUpstream", "DELETE", "/upstreams/{upstream_id}", upstreams_delete, op(
        "Remove an upstream provider and its links", ok=204, params=[UPSTREAM_ID, spec.IF_MATCH],
        errors=(404, 412))),
    Operation("listSources", "GET", "/migration-sources", sources_list, op("List migration sources",
                                                                            result="SourceList")),
    Operation("createSource", "POST", "/migration-sources", sources_create, op(
        "Add a migration source", ok=201, result="Source", body="SourceInput", errors=(409,))),
    Operation("getSource", "GET", "/migration-sources/{source_id}", sources_get, op(
        "Read a migration source (secret names only)", result="Source", params=[SOURCE_ID], errors=(404,),
        etag=True)),
    Operation("updateSource", "PATCH", "/migration-sources/{source_id}", sources_update, op(
        "Change a migration source", result="Source", body="SourceChanges", params=[SOURCE_ID, spec.IF_MATCH],
        errors=(404, 412))),
    Operation("deleteSource", "DELETE", "/migration-sources/{source_id}", sources_delete, op(
        "Remove a migration source", ok=204, params=[SOURCE_ID, spec.IF_MATCH], errors=(404, 412))),
    Operation("listKeys", "GET", "/keys", keys_list, op("Signing keys and their state", result="KeyList")),
    Operation("rotateKey", "POST", "/keys", keys_rotate, op(
        "Create a new signing key (published now, signing after key_activation_delay unless immediately)",
        ok=201, result="Key", body="KeyRotation", body_required=False)),
    Operation("listAuditEvents", "GET", "/audit-events", audit_list, op(
        "Audit events, newest first (cursor paging)", result="AuditEventPage", errors=(400, 422), params=[
            Q("user", "The user's id (sub) or email address."), Q("kind", "An event kind, e.g. login.failed."),
            Q("since", "An age (15m, 1h, 7d) or ISO 8601 time."), Q("until", "An age or ISO 8601 time."),
            spec.CURSOR, spec.LIMIT])),
    Operation("listTerms", "GET", "/terms", terms_list, op(
        "The current terms version and the versions users accepted", result="Terms")),
]

assert len({o.name for o in OPERATIONS}) == len(OPERATIONS)
