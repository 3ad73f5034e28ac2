"""Pushed authorization requests (RFC 9126) and the reading of an authorization request that
comes by reference (`request_uri`) or by value (`request`, oauth2/request_objects.py).

`AuthorizationRequests.push` is the PAR endpoint's work (§2.1): the client is authenticated
already; the request (or its request object) is validated exactly as the authorization endpoint
would, then kept for EXPIRES_IN seconds under a fresh `urn:ietf:params:oauth:request_uri:<random>`
bound to that client.

`AuthorizationRequests.resolve` runs first at the authorization endpoint and answers the
parameters that the checks of oauth2/authorize_checks.py then validate: those of the pushed
request (used up by this first use, §4: single use; refused when expired or pushed by another
client), or those of the request object, or the query's own. It refuses a request that did not
come through PAR when the broker (setting `par_required`) or the client (`--require-par`) wants
it (§5, §6), and one without a signed request object when the client requires one (RFC 9101
§10.5, `--require-signed-request-object`). An error is redirected when the query's own client_id
and redirect_uri are trusted, as for any other authorization error; else shown on the error page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..clients.registry import ClientRegistry
from ..security import random_token
from ..store.db import Database, aware, utcnow
from ..store.models import Client, PushedRequest
from . import authorize_checks
from .errors import BadAuthorizationRequest, InvalidRequestError, OAuth2Error, RequestUriNotSupportedError
from .request_objects import InvalidRequestObjectError, RequestObjects

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
EXPIRES_IN = 60
CLIENT_AUTH_PARAMS = ("client_secret", "client_assertion", "client_assertion_type")


class InvalidRequestUriError(OAuth2Error):
    """RFC 9101 §7: the request_uri is invalid (unknown, expired, used, or another client's)."""

    error = "invalid_request_uri"


class AuthorizationRequests:
    def __init__(self, db: Database, clients: ClientRegistry, objects: RequestObjects, *, par_required: bool):
        self.db = db
        self.clients = clients
        self.objects = objects
        self.par_required = par_required

    def required(self, client: Client) -> bool:
        return self.par_required or client.require_par or client.fapi2  # FAPI 2.0 §5.3.2.2 item 3

    # -- the PAR endpoint ----------------------------------------------------------------------
    def push(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """RFC 9126 §2.1-2.2: the 201 body, or an OAuth2Error for the JSON answer. Blocking."""
        if "request_uri" in form:
            raise InvalidRequestError("request_uri must not be pushed (RFC 9126 §2.1)")
        if form.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id does not match the authenticated client")
        if "request" in form:
            params = self.objects.parameters(client, form["request"])
        elif client.require_signed_request_object:
            raise InvalidRequestObjectError("this client must send a signed request object")
        else:
            params = {k: v for k, v in form.items() if k not in CLIENT_AUTH_PARAMS}
        params["client_id"] = client.client_id
        try:
            authorize_checks.validate(self.clients, dict(params))
        except BadAuthorizationRequest as bad:
            raise InvalidRequestError("the authorization request is invalid", detail=bad.message) from None
        rid = random_token(32)
        with self.db.session() as s:
            s.add(PushedRequest(id=rid, client_id=client.client_id, params=params,
                                expires_at=utcnow() + timedelta(seconds=EXPIRES_IN)))
        return {"request_uri": URN_PREFIX + rid, "expires_in": EXPIRES_IN}

    # -- the authorization endpoint ------------------------------------------------------------
    def resolve(self, params: dict[str, str]) -> dict[str, str]:
        """The parameters to validate (see the module docstring). Blocking."""
        client_id = params.get("client_id")
        client = self.clients.get(client_id) if client_id else None
        if client is None:
            return params  # the checks show "unknown client"
        try:
            return self._resolve(client, params)
        except OAuth2Error as err:
            try:
                err.request = self._trusted(params)  # type: ignore[attr-defined]
            except BadAuthorizationRequest:
                raise BadAuthorizationRequest(err.description) from None
            raise

    def _resolve(self, client: Client, params: dict[str, str]) -> dict[str, str]:
        if "request" in params and "request_uri" in params:
            raise InvalidRequestError("send request or request_uri, not both (RFC 9101 §5)")
        uri = params.get("request_uri")
        if uri is not None:
            if not uri.startswith(URN_PREFIX):
                raise RequestUriNotSupportedError("only request_uri values from the PAR endpoint are supported")
            return self._take(client, uri[len(URN_PREFIX):])
        if self.required(client):
            raise InvalidRequestError("this authorization request must be pushed to the PAR endpoint first")
        if "request" in params:
            return self.objects.parameters(client, params["request"])
        if client.require_signed_request_object:
            raise InvalidRequestObjectError("this client must send a signed request object")
        return params

    def _take(self, client: Client, rid: str) -> dict[str, str]:
        """The pushed parameters, used up now (RFC 9126 §4: one use)."""
        with self.db.session() as s:
            row = s.get(PushedRequest, rid[:64], with_for_update=True) if rid else None
            if row is None:
                raise InvalidRequestUriError("the request_uri is unknown or was already used")
            s.delete(row)
            owner, params, expires_at = row.client_id, dict(row.params), aware(row.expires_at)
        if owner != client.client_id:
            raise InvalidRequestUriError("the request_uri was pushed by another client")
        if expires_at <= utcnow():
            raise InvalidRequestUriError("the request_uri expired")
        return params

    def _trusted(self, params: dict[str, str]) -> authorize_checks.AuthorizationRequest:
        """The request as far as its (outer) client and redirect URI are trusted, to send an
        error there; BadAuthorizationRequest when they are not."""
        outer = {k: v for k, v in params.items() if k not in ("request", "request_uri")}
        req = authorize_checks.AuthorizationRequest(params=outer)
        for check in authorize_checks.CHECKS[:3]:  # parameters, client, redirect URI
            check(self.clients, req)
        return req
