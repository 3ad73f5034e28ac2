"""RFC 7591 §3 client registration endpoint (POST /oauth2/register) and the RFC 7592 §2 client
configuration endpoint (GET, PUT, DELETE /oauth2/register/{client_id}).

Off unless the setting `registration` is `open` or `token` (404, and discovery has no
`registration_endpoint`). In `token` mode a registration carries an initial access token as a
Bearer token (RFC 7591 §3, RFC 6750 §2.1). Registrations are rate-limited per client address
(accounts/throttle.py LIMITS "register-ip"). The rules are in clients/registration.py.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..accounts.throttle import LIMITS, client_address, subject
from ..audit import CLIENT_DELETED, CLIENT_REGISTERED, CLIENT_UPDATED
from ..clients.registration import INVALID_CLIENT_METADATA, InvalidToken, RegistrationError
from ..security import loads_bounded
from ..web import body as bodies
from ..web.proxies import client_ip
from .common import NO_STORE, json_response, provider_of

JSON_TYPE = "application/json"


def _bearer(request: Request) -> str | None:
    """RFC 6750 §2.1: `Authorization: Bearer <token>`; None when absent or of another scheme."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _error(err: RegistrationError) -> Response:
    headers = {}
    if isinstance(err, InvalidToken):
        headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{err.description}"'
    return json_response(err.as_dict(), err.status_code, headers)


async def _json_body(request: Request) -> object:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != JSON_TYPE:
        raise RegistrationError(INVALID_CLIENT_METADATA, f"the request body must be {JSON_TYPE}")
    try:
        raw = await bodies.read_body(request)
        return loads_bounded(raw, bodies.MAX_BODY)
    except (bodies.BodyError, ValueError):
        raise RegistrationError(INVALID_CLIENT_METADATA, "the request body is not a JSON object") from None


def _enabled(request: Request) -> bool:
    return provider_of(request).settings.registration in ("open", "token")


def _disabled() -> Response:
    return json_response({"error": "invalid_request",
                          "error_description": "dynamic client registration is not enabled on this server"}, 404)


async def register_endpoint(request: Request) -> Response:
    if not _enabled(request):
        return _disabled()
    provider = provider_of(request)
    ip = client_ip(request)
    name, who = "register-ip", subject(client_address(ip))
    count, window = LIMITS[name]
    wait = await run_in_threadpool(provider.limiter.hit, f"{name}:{who}", count, window)
    if wait is not None:
        return json_response({"error": "invalid_request",
                              "error_description": "too many registrations from this address; try again later"},
                             429, {"Retry-After": str(wait)})
    try:
        initial = None
        if provider.settings.registration == "token":
            initial = await run_in_threadpool(provider.registration.check_initial_token, _bearer(request))
        body = await _json_body(request)
        out = await run_in_threadpool(provider.registration.register, body, initial)
    except RegistrationError as err:
        return _error(err)
    await run_in_threadpool(provider.audit.record, CLIENT_REGISTERED, ip=ip,
                            user_agent=request.headers.get("user-agent"), client_id=out["client_id"],
                            client_name=out.get("client_name"))
    return json_response(out, 201)


async def client_configuration_endpoint(request: Request) -> Response:
    """RFC 7592 §2: read, replace or delete the client the registration access token opens."""
    if not _enabled(request):
        return _disabled()
    provider = provider_of(request)
    client_id = request.path_params["client_id"]
    token = _bearer(request)
    service = provider.registration
    try:
        if request.method == "GET":
            return json_response(await run_in_threadpool(service.read, client_id, token))
        if request.method == "PUT":
            await run_in_threadpool(service.authorise, client_id, token)  # 401 before reading the body
            body = await _json_body(request)
            out = await run_in_threadpool(service.replace, client_id, token, body)
            kind = CLIENT_UPDATED
        else:
            await run_in_threadpool(service.delete, client_id, token)
            out, kind = None, CLIENT_DELETED
    except RegistrationError as err:
        return _error(err)
    await run_in_threadpool(provider.audit.record, kind, ip=client_ip(request),
                            user_agent=request.headers.get("user-agent"), client_id=client_id)
    if out is None:
        return Response(status_code=204, headers=NO_STORE)
    return json_response(out)

