"""create_app(settings): builds the ASGI application, mounts the routes, nothing else.

Protocol endpoints are plain Starlette routes inside the FastAPI app: they read the raw request
themselves (OAuth parameters have rules - no duplicates, empty means absent - that a model
binder would hide), and skipping per-request dependency resolution keeps the hot paths lean.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from .login.journey import Journey
from .login.views import LoginViews
from .oauth2.endpoints.common import read_form, unique_params
from .oauth2.endpoints.introspect import introspect_endpoint
from .oauth2.endpoints.revoke import revoke_endpoint
from .oauth2.endpoints.token import token_endpoint
from .oauth2.errors import OAuth2Error
from .oidc.discovery import metadata_bytes
from .oidc.logout import Logout
from .oidc.userinfo import userinfo_endpoint
from .provider import Provider
from .settings import Settings
from .web.cors import CorsMiddleware
from .web.csrf import Csrf
from .web.templating import Pages

log = logging.getLogger("idbroker")


def create_app(settings: Settings | None = None, provider: Provider | None = None) -> FastAPI:
    if provider is None:
        assert settings is not None
        provider = Provider(settings)
    settings = provider.settings
    log.setLevel(settings.log_level.upper())
    pages = Pages()
    journey = Journey(provider, pages)
    csrf = Csrf(provider.csrf_key, f"{settings.cookie_name}_csrf", settings.secure_cookies)
    views = LoginViews(journey, csrf)
    logout = Logout(journey, csrf)
    discovery = metadata_bytes(provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        provider.keys.ensure()
        yield

    async def openid_configuration(request: Request) -> Response:
        return Response(discovery, media_type="application/json", headers={"Cache-Control": "public, max-age=300"})

    async def jwks(request: Request) -> Response:
        return Response(provider.keys.jwks_bytes(), media_type="application/jwk-set+json",
                        headers={"Cache-Control": "public, max-age=60"})

    async def authorize(request: Request) -> Response:
        try:
            if request.method == "POST":
                params = await read_form(request)
            else:
                params = unique_params(list(request.query_params.multi_items()))
        except OAuth2Error as err:
            return journey.error_page(err.description, 400)
        return await run_in_threadpool(journey.start, request, params)

    async def resume(request: Request) -> Response:
        return await run_in_threadpool(journey.resume, request, request.query_params.get("interaction"))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = FastAPI(title="idbroker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.provider = provider
    app.state.journey = journey
    routes = [
        Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/oauth2/authorize", authorize, methods=["GET", "POST"]),
        Route("/oauth2/authorize/resume", resume, methods=["GET"]),
        Route("/oauth2/token", token_endpoint, methods=["POST"]),
        Route("/oauth2/userinfo", userinfo_endpoint, methods=["GET", "POST"]),
        Route("/oauth2/userInfo", userinfo_endpoint, methods=["GET", "POST"]),
        Route("/oauth2/revoke", revoke_endpoint, methods=["POST"]),
        Route("/oauth2/introspect", introspect_endpoint, methods=["POST"]),
        Route("/oauth2/logout", logout.endpoint, methods=["GET", "POST"]),
        Route("/login", views.login_form, methods=["GET"]),
        Route("/login", views.login_submit, methods=["POST"]),
        Route("/consent", views.consent_form, methods=["GET"]),
        Route("/consent", views.consent_submit, methods=["POST"]),
        Route("/", views.home, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    app.router.routes.extend(routes)
    app.add_middleware(CorsMiddleware)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "web" / "static")), name="static")
    return app
