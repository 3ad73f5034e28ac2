"""The OpenAPI 3.1 document of the admin API, as data: the schemas of each resource here, one
operation object per route next to its handler (handlers.py OPERATIONS), put together by
`document`. A test checks that every mounted route is documented and nothing else is."""

from __future__ import annotations

from typing import Any

BASE = "/admin/api/v1"
READ, WRITE = "idbroker:admin:read", "idbroker:admin:write"

_STR, _BOOL, _INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
_TIME = {"type": "string", "format": "date-time"}
_STRS = {"type": "array", "items": _STR}


def _opt(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, or null."""
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_CLIENT_FIELDS: dict[str, Any] = {
    "client_id": _STR, "name": _STR, "redirect_uris": _STRS, "post_logout_redirect_uris": _STRS,
    "token_endpoint_auth_method": {"type": "string", "enum": ["client_secret_basic", "client_secret_post",
                                                              "private_key_jwt", "none"]},
    "grant_types": _STRS, "response_types": _STRS, "scopes": _STRS, "first_party": _BOOL,
    "logo_uri": _opt(_STR), "logback_uri": _opt(_STR), "backchannel_logout_uri": _opt(_STR),
    "jwks": _opt({"type": "object"}), "id_token_signed_response_alg": _STR,
    "access_token_ttl": _opt(_INT), "id_token_ttl": _opt(_INT), "refresh_token_ttl": _opt(_INT),
    "branding": _opt({"type": "object"}), "hidden_from_dashboard": _BOOL, "signup_enabled": _opt(_BOOL),
    "mfa_policy": _opt({"type": "string", "enum": ["off", "optional", "required"]}),
    "exchange_audiences": _STRS, "idps": _opt(_STRS), "local_accounts": _BOOL,
    "userinfo_signed_response_alg": _opt(_STR), "subject_type": {"type": "string", "enum": ["public", "pairwise"]},
    "sector_identifier_uri": _opt(_STR), "frontchannel_logout_uri": _opt(_STR),
    "frontchannel_logout_session_required": _BOOL, "require_par": _BOOL,
    "require_signed_request_object": _BOOL, "dpop_bound": _BOOL,
}
_PROFILE: dict[str, Any] = {
    **{name: _opt(_STR) for name in ("given_name", "family_name", "middle_name", "nickname", "preferred_username",
                                      "picture", "website", "gender", "birthdate", "zoneinfo", "locale",
                                      "phone_number")},
    "address": _opt({"type": "object"}), "groups": _STRS, "custom_attributes": _opt({"type": "object"}),
}


def _page(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": ref(item)}, "next_cursor": _opt(_STR)}}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": _STR, "error_description": _STR,
        "errors": {"type": "array", "items": {"type": "object", "required": ["path", "message"],
                                              "properties": {"path": _STR, "message": _STR}}}}},
    "Client": {"type": "object", "properties": {**_CLIENT_FIELDS, "has_secret": _BOOL, "created_at": _TIME,
                                                "updated_at": _TIME}},
    "ClientInput": {"type": "object", "required": ["client_id"], "additionalProperties": False,
                    "properties": _CLIENT_FIELDS},
    "ClientChanges": {"type": "object", "additionalProperties": False,
                      "properties": {k: v for k, v in _CLIENT_FIELDS.items() if k != "client_id"}},
    "ClientWithSecret": {"allOf": [ref("Client"), {"type": "object", "properties": {"client_secret": _opt(_STR)}}]},
    "ClientList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Client")}}},
    "User": {"type": "object", "properties": {
        "id": _STR, "email": _STR, "email_verified": _BOOL, **_PROFILE, "phone_number_verified": _BOOL,
        "disabled": _BOOL, "terms_version": _opt(_STR), "terms_accepted_at": _opt(_TIME), "created_at": _TIME,
        "updated_at": _TIME}},
    "UserInput": {"type": "object", "required": ["email"], "additionalProperties": False, "properties": {
        "email": _STR, "password": _STR, "email_verified": _BOOL, **_PROFILE}},
    "UserChanges": {"type": "object", "additionalProperties": False, "properties": {
        **_PROFILE, "email_verified": _BOOL, "disabled": _BOOL}},
    "UserPage": _page("User"),
    "ImportSummary": {"type": "object", "required": ["created", "updated", "skipped", "rejected", "rejects",
                                                     "dry_run"], "properties": {
        "created": _INT, "updated": _INT, "skipped": _INT, "rejected": _INT, "dry_run": _BOOL,
        "rejects": {"type": "array", "description": "The first 1000 records rejected, with why.", "items": {
            "type": "object", "required": ["line", "reason"], "properties": {"line": _INT, "reason": _STR}}}}},
    "Session": {"type": "object", "properties": {
        "sid": _STR, "auth_time": _TIME, "amr": _STRS, "acr": _opt(_STR), "idp": _opt(_STR), "created_at": _TIME,
        "expires_at": _TIME, "user_agent": _opt(_STR), "ip": _opt(_STR)}},
    "SessionList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Session")}}},
    "SignOutResult": {"type": "object", "properties": {"sessions_ended": _INT, "applications_told": _INT}},
    "MfaResetResult": {"type": "object", "properties": {"factors_removed": _INT}},
    "Upstream": {"type": "object", "properties": {
        "id": _STR, "kind": _STR, "name": _STR, "options": {"type": "object"}, "secret_names": _STRS,
        "logo_uri": _opt(_STR), "trust_email": _BOOL, "trust_mfa": _BOOL, "domains": _STRS, "created_at": _TIME,
        "updated_at": _TIME}},
    "UpstreamInput": {"type": "object", "required": ["id", "kind", "name"], "additionalProperties": False,
                      "properties": {"id": _STR, "kind": _STR, "name": _STR, "options": {"type": "object"},
                                     "secrets": {"type": "object", "additionalProperties": _STR},
                                     "logo_uri": _opt(_STR), "trust_email": _BOOL, "trust_mfa": _BOOL,
                                     "domains": _STRS}},
    "UpstreamChanges": {"type": "object", "additionalProperties": False,
                        "properties": {"name": _STR, "options": {"type": "object"},
                                       "secrets": {"type": "object", "additionalProperties": _STR},
                                       "logo_uri": _opt(_STR), "trust_email": _BOOL, "trust_mfa": _BOOL,
                                       "domains": _STRS}},
    "UpstreamList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Upstream")}}},
    "Source": {"type": "object", "properties": {
        "id": _STR, "kind": _STR, "position": _INT, "options": {"type": "object"}, "secret_names": _STRS,
        "enabled": _BOOL, "created_at": _TIME, "updated_at": _TIME}},
    "SourceInput": {"type": "object", "required": ["id", "kind"], "additionalProperties": False,
                    "properties": {"id": _STR, "kind": _STR, "options": {"type": "object"}, "position": _INT,
                                   "enabled": _BOOL}},
    "SourceChanges": {"type": "object", "additionalProperties": False,
                      "properties": {"options": {"type": "object"}, "position": _INT, "enabled": _BOOL}},
    "SourceList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Source")}}},
    "Key": {"type": "object", "properties": {"kid": _STR, "alg": _STR, "state": {
        "type": "string", "enum": ["next", "active", "retired"]}, "activate_at": _TIME, "retire_after": _opt(_TIME),
        "public_jwk": {"type": "object"}}},
    "KeyList": {"type": "object", "properties": {"items": {"type": "array", "items": ref("Key")}}},
    "KeyRotation": {"type": "object", "additionalProperties": False, "properties": {
        "alg": {"type": "string", "enum": ["ES256", "RS256"]}, "immediately": _BOOL}},
    "AuditEvent": {"type": "object", "properties": {
        "id": _INT, "kind": _STR, "user_id": _opt(_STR), "ip": _opt(_STR), "user_agent": _opt(_STR),
        "detail": _opt({"type": "object"}), "created_at": _TIME}},
    "AuditEventPage": _page("AuditEvent"),
    "Terms": {"type": "object", "properties": {
        "current": _opt(_STR), "versions": {"type": "array", "items": {"type": "object", "properties": {
            "version": _STR, "accepted_by": _INT, "current": _BOOL}}}}},
}

_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad request", 401: "No valid access token",
                403: "The token lacks the scope", 404: "Not found", 409: "Conflict",
                412: "The If-Match ETag is stale", 413: "Body too large", 415: "Body not JSON",
                422: "Invalid fields (with their paths)"}


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _STR, "description": description}


def query_param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or _STR, "description": description}


IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": _STR,
            "description": "The ETag of the resource as read; a stale one is refused with 412."}
CURSOR = query_param("cursor", "The next_cursor of the previous page.")
LIMIT = query_param("limit", "Items per page (1-500, default 50).", {"type": "integer", "minimum": 1, "maximum": 500})


def operation(summary: str, *, ok: int = 200, result: str | None = None, body: str | None = None,
              params: list[dict[str, Any]] = (), errors: tuple[int, ...] = (), etag: bool = False,
              body_required: bool = True) -> dict[str, Any]:
    """An OpenAPI operation object; 401 and 403 apply to every one."""
    answer: dict[str, Any] = {"description": _STATUS_TEXT[ok]}
    if result:
        answer["content"] = {"application/json": {"schema": ref(result)}}
    if etag:
        answer["headers"] = {"ETag": {"schema": _STR, "description": "For If-Match on a later change."}}
    responses: dict[str, Any] = {str(ok): answer}
    codes = {401, 403, *errors}
    if body:
        codes |= {400, 413, 415, 422}
    for code in sorted(codes):
        responses[str(code)] = {"description": _STATUS_TEXT[code],
                                "content": {"application/json": {"schema": ref("Error")}}}
    doc: dict[str, Any] = {"summary": summary, "parameters": list(params), "responses": responses}
    if body:
        doc["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": ref(body)}}}
    return doc


def document(operations: list[Any], server: str) -> dict[str, Any]:
    """The whole document from the operations table (each has method, path, scope, doc)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry = dict(op.doc)
        entry["operationId"] = op.name
        entry["security"] = [{"bearer": [op.scope]}]
        entry["tags"] = [op.path.split("/")[1]]
        paths.setdefault(BASE + op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "idbroker admin API", "version": "1",
                 "description": "Manage clients, users, sessions, upstream providers, migration sources, "
                                "signing keys, the audit trail and terms versions. Authorise with a Bearer "
                                f"access token of the client_credentials grant carrying {READ} (reads) or "
                                f"{WRITE} (changes)."},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {
                "type": "oauth2", "description": "client_credentials at the token endpoint",
                "flows": {"clientCredentials": {"tokenUrl": server + "/oauth2/token",
                                                "scopes": {READ: "read everything", WRITE: "change everything"}}}}},
        },
    }
