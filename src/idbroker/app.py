"""create_app(settings): builds the ASGI application, mounts the routes, nothing else.

A plain Starlette application: endpoints read the raw request themselves (OAuth parameters have
rules - no duplicates, empty means absent - that a model binder would hide). FastAPI was dropped:
nothing here used its dependency injection or OpenAPI, and importing it cost every worker ~13 MB.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio import to_thread
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from .endpoints.admin.routes import admin_routes
from .endpoints.aws_credentials import aws_credentials_endpoint
from .endpoints.common import read_form, unique_params
from .endpoints.device_authorization import device_authorization_endpoint
from .endpoints.introspect import introspect_endpoint
from .endpoints.logout import Logout
from .endpoints.monitoring import metrics_endpoint, readyz_endpoint
from .endpoints.pushed_authorization import par_endpoint
from .endpoints.registration import client_configuration_endpoint, register_endpoint
from .endpoints.revoke import revoke_endpoint
from .endpoints.scim import scim_routes
from .endpoints.token import token_endpoint
from .endpoints.userinfo import userinfo_endpoint
from .flow.journey import Journey
from .oauth2.errors import BadAuthorizationRequest, OAuth2Error
from .oidc.discovery import metadata_bytes
from .pages.account import AccountViews
from .pages.account_security import SecurityViews
from .pages.admin import AdminViews
from .pages.dashboard import DashboardViews
from .pages.device import DeviceViews
from .pages.passkey_sign_in import PasskeyLoginViews
from .pages.recovery import RecoveryViews
from .pages.second_step import MfaViews
from .pages.sign_in import LoginViews
from .pages.signup import SignupViews
from .pages.terms import TermsViews
from .pages.upstream_sign_in import UpstreamViews
from .pages.verification import VerificationViews
from .provider import ENDPOINTS, Provider
from .security import TOKEN_RE
from .settings import Settings
from .store.db import CHECKPOINT_INTERVAL, Database
from .store.housekeeping import purge_if_first
from .text import N_, match
from .web.cors import CorsMiddleware
from .web.csrf import Csrf
from .web.documents import Document, Documents
from .web.metrics import ObservedRequests, mark_dead_workers, runtime_watch, watch_pool
from .web.navigation import local_path
from .web.proxies import ProxyHeaders
from .web.templating import Pages
from .web.theme import LayeredStaticFiles, theme_css

log = logging.getLogger("idbroker")

STORE_BUSY = N_("The service is busy for a moment. Please try again.")


def store_unavailable(journey: Journey):
    """The database went away under a request (restarted, connection terminated, failed over): the
    pool has dropped the broken connection and the next request gets a new one. The client is told
    to try again - 503 with Retry-After, an RFC 6749 error for APIs, a page for browsers - instead
    of a 500."""
    async def handler(request: Request, exc: Exception) -> Response:
        log.warning("the store could not be reached during %s %s: %s", request.method, request.url.path,
                    type(exc.__cause__ or exc).__name__)
        headers = {"Retry-After": "1", "Cache-Control": "no-store"}
        if "text/html" in request.headers.get("accept", ""):
            response = journey.error_page(request, STORE_BUSY, 503)
            response.headers.update(headers)
            return response
        return JSONResponse({"error": "temporarily_unavailable",
                             "error_description": "the store is reconnecting; try again"}, 503, headers=headers)
    return handler


# Its own generator: drawing from the module's shared one would move the state that code seeded for
# repeatable results (a test's, a library's) is relying on, from a background task at any moment.
_START_SPREAD = random.Random()


async def purge_periodically(db: Database, interval: int, retention_days: int) -> None:
    """Every `interval` seconds (the first time after a random part of it, so that workers started
    together do not all try at once) one worker across the deployment purges (store/housekeeping.py)."""
    await anyio.sleep(_START_SPREAD.uniform(0, interval))
    while True:
        try:
            await to_thread.run_sync(purge_if_first, db, retention_days)
        except Exception:  # noqa: BLE001 - a failed round is logged and tried again next time
            log.exception("the periodic purge failed")
        await anyio.sleep(interval)


async def checkpoint_periodically(db: Database, interval: float, after_failure: float = 60.0) -> None:
    """SQLite: the WAL is copied into the database file off the writers' path (Database.checkpoint),
    after any commit, every `interval` seconds. A failure (a full disk, say) is one line in the log
    and the next try waits `after_failure` seconds; SQLite's own checkpoint stays as the safety net."""
    while True:
        await anyio.sleep(interval)
        if not db.wal_changed():
            continue
        try:
            await to_thread.run_sync(db.checkpoint)
        except Exception as exc:  # noqa: BLE001
            log.warning("the WAL checkpoint failed (tried again in %.0f s): %s", after_failure,
                        (str(exc).splitlines() or [type(exc).__name__])[0])
            await anyio.sleep(after_failure)


def create_app(settings: Settings | None = None, provider: Provider | None = None,
               started: Callable[[], None] | None = None) -> Starlette:
    """The application. `started` is called on the event loop once its start-up work is done, right
    before it reports the start to the server (asgi.py)."""
    if provider is None:
        assert settings is not None
        provider = Provider(settings)
    settings = provider.settings
    log.setLevel(settings.log_level.upper())
    pages = Pages(themes_dir=Path(settings.themes_dir) if settings.themes_dir else None, theme=settings.theme,
                  default_locale=settings.default_locale, cookie_name=settings.cookie_name)
    pages.env.globals["theme_logo"] = settings.theme_logo_url
    pages.env.globals["signup_enabled"] = settings.signup_enabled  # a client may override it
    pages.env.globals["upstream_buttons"] = provider.upstreams.buttons  # the sign-in page's providers
    journey = Journey(settings=settings, db=provider.db, clients=provider.clients, sessions=provider.sessions,
                      mfa=provider.mfa, grants=provider.grants, access_tokens=provider.access_tokens,
                      id_tokens=provider.id_tokens, audit=provider.audit, pages=pages, upstreams=provider.upstreams)
    csrf = Csrf(provider.csrf_key, f"{settings.cookie_name}_csrf", settings.secure_cookies)
    views = LoginViews(provider, journey, csrf)
    signup = SignupViews(provider, journey, csrf)
    verification = VerificationViews(provider, journey, csrf)
    recovery = RecoveryViews(provider, journey, csrf)
    logout = Logout(provider, journey, csrf)
    discovery = metadata_bytes(settings.server, ENDPOINTS, registration=settings.registration != "off")
    tracing = None
    if settings.observability.otel_endpoint:  # only then: off imports no opentelemetry module
        from .web.tracing import Tracing
        tracing = Tracing(endpoint=settings.otel_endpoint, service_name=settings.otel_service_name,
                          sample_ratio=settings.otel_sample_ratio, engine=provider.db.engine)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        provider.keys.ensure()
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        if tracing is not None:
            tracing.start()  # in each worker, after the fork (web/tracing.py)
        try:
            async with anyio.create_task_group() as tasks:
                lock = provider.db.writer_lock
                tasks.start_soon(runtime_watch(lock.drain_waits if lock is not None else None,
                                               provider.grants.drain_batches).run)
                if provider.db.has_wal:
                    tasks.start_soon(checkpoint_periodically, provider.db, CHECKPOINT_INTERVAL)
                if settings.purge_interval:
                    tasks.start_soon(purge_periodically, provider.db, settings.purge_interval,
                                     settings.audit_retention_days)
                if started is not None:
                    started()
                yield
                tasks.cancel_scope.cancel()
        finally:
            if tracing is not None:
                tracing.stop()

    async def authorize(request: Request) -> Response:
        try:
            if request.method == "POST":
                params = await read_form(request)
            else:
                params = unique_params(list(request.query_params.multi_items()))
        except OAuth2Error as err:
            return journey.error_page(request, err.description, 400)
        try:  # RFC 9126 pushed requests and RFC 9101 request objects (oauth2/pushed_requests.py)
            params = await run_in_threadpool(provider.authorization_requests.resolve, params)
        except BadAuthorizationRequest as bad:
            return journey.error_page(request, bad.message, bad.status_code, bad.params)
        except OAuth2Error as err:
            return journey.redirect_error(request, err.request, err)  # type: ignore[attr-defined]
        return await run_in_threadpool(journey.start, request, params)

    async def resume(request: Request) -> Response:
        return await run_in_threadpool(journey.resume, request, request.query_params.get("interaction"))

    global_theme_css = Path(settings.themes_dir) / settings.theme / "static" / "theme.css" \
        if settings.themes_dir and settings.theme else None

    async def stylesheet(request: Request) -> Response:
        client = provider.clients.get(request.query_params.get("client", "")) \
            if request.query_params.get("client") else None
        folder = pages.client_theme_dir(client)
        css = theme_css(settings, client.branding if client is not None else None, global_theme_css,
                        folder / "static" / "theme.css" if folder else None)
        # Short cache: a client's new colours show within a minute.
        return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=60"})

    async def theme_asset(request: Request) -> Response:
        """Images and other files of a client theme: /themes/<name>/<file> from its static folder."""
        name, path = request.path_params["name"], request.path_params["path"]
        if not settings.themes_dir or not TOKEN_RE.match(name):
            return PlainTextResponse("no such theme file", 404)
        root = (Path(settings.themes_dir) / name / "static").resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return PlainTextResponse("no such theme file", 404)
        return FileResponse(target, headers={"Cache-Control": "public, max-age=3600"})

    async def choose_language(request: Request) -> Response:
        """The selector on every page: remember the choice, go back where the user was."""
        lang = match(request.query_params.get("lang"))
        target = local_path(request.query_params.get("next"))
        response = RedirectResponse(settings.issuer + target, status_code=303)
        if lang:
            response.set_cookie(pages.lang_cookie, lang, max_age=365 * 86400, httponly=True,
                                secure=settings.secure_cookies, samesite="lax", path="/")
        return response

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    documents = [  # the same for every caller: served by web/documents.py, before the router
        Route("/.well-known/openid-configuration",
              Document(lambda: discovery, "application/json", "public, max-age=300"), methods=["GET"]),
        Route("/.well-known/jwks.json", Document(provider.keys.jwks_bytes, "application/jwk-set+json",
                                                 "public, max-age=60"), methods=["GET"])]
    routes = [
        *documents,
        Route("/oauth2/authorize", authorize, methods=["GET", "POST"]),
        Route("/oauth2/authorize/resume", resume, methods=["GET"]),
        Route("/oauth2/token", token_endpoint, methods=["POST"]),
        Route("/oauth2/userinfo", userinfo_endpoint, methods=["GET", "POST"]),
        Route("/oauth2/userInfo", userinfo_endpoint, methods=["GET", "POST"]),
        Route("/oauth2/revoke", revoke_endpoint, methods=["POST"]),
        Route("/oauth2/introspect", introspect_endpoint, methods=["POST"]),
        Route("/oauth2/par", par_endpoint, methods=["POST"]),
        Route("/oauth2/device_authorization", device_authorization_endpoint, methods=["POST"]),
        *DeviceViews(provider, journey, csrf).routes(),  # /device (RFC 8628 user code page)
        Route("/oauth2/register", register_endpoint, methods=["POST"]),  # RFC 7591 §3
        Route("/oauth2/register/{client_id}", client_configuration_endpoint,
              methods=["GET", "PUT", "DELETE"]),  # RFC 7592 §2
        Route("/credentials/aws", aws_credentials_endpoint, methods=["POST"]),
        Route("/oauth2/logout", logout.endpoint, methods=["GET", "POST"]),
        Route("/login", views.login_form, methods=["GET"]),
        Route("/login", views.login_submit, methods=["POST"]),
        Route("/consent", views.consent_form, methods=["GET"]),
        Route("/consent", views.consent_submit, methods=["POST"]),
        Route("/signup", signup.signup_form, methods=["GET"]),
        Route("/signup", signup.signup_submit, methods=["POST"]),
        Route("/verify-email", verification.verify_form, methods=["GET"]),
        Route("/verify-email", verification.verify_submit, methods=["POST"]),
        Route("/verify-email/confirm", verification.confirm, methods=["GET"]),
        Route("/forgot-password", recovery.forgot_form, methods=["GET"]),
        Route("/forgot-password", recovery.forgot_submit, methods=["POST"]),
        Route("/reset-password", recovery.reset_form, methods=["GET"]),
        Route("/reset-password", recovery.reset_submit, methods=["POST"]),
        *DashboardViews(provider, journey, csrf).routes(),  # "/" and /apps
        *AdminViews(provider, journey, csrf).routes(),  # /admin (pages/admin.py)
        *AccountViews(provider, journey, csrf).routes(),
        *TermsViews(provider, journey, csrf).routes(),
        *MfaViews(provider, journey, csrf).routes(),       # /mfa, /mfa/enrol
        *SecurityViews(provider, journey, csrf).routes(),  # /account/security
        *PasskeyLoginViews(provider, journey, csrf).routes(),  # /login/passkey (passwordless)
        *UpstreamViews(provider, journey, csrf).routes(),  # /idp/{id}/..., /account/identities
        Route("/theme.css", stylesheet, methods=["GET"]),
        Route("/themes/{name}/{path:path}", theme_asset, methods=["GET"]),
        Route("/language", choose_language, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/readyz", readyz_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *admin_routes(),  # /admin/api/v1 (endpoints/admin/)
        *scim_routes(),  # /scim/v2 (endpoints/scim.py)
    ]
    routes.append(Mount("/static", LayeredStaticFiles(pages.static_dirs), name="static"))
    watch_pool(provider.db.engine)
    mark_dead_workers()
    busy = store_unavailable(journey)
    middleware = [
        Middleware(ProxyHeaders, trusted_proxies=settings.trusted_proxies),  # web/proxies.py: the real client
        Middleware(ObservedRequests, access_log=settings.observability.access_log_on),  # request id, metrics
        *([Middleware(tracing.middleware, trusted_proxies=settings.trusted_proxies)] if tracing else []),
        Middleware(CorsMiddleware),
        Middleware(Documents, routes=documents)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={OperationalError: busy, InterfaceError: busy})
    app.state.provider = provider
    app.state.body_read_timeout = settings.body_read_timeout
    app.state.journey = journey
    return app
