"""Operations endpoints: ``/metrics`` (Prometheus) and ``/readyz`` (readiness); ``/healthz`` (in
app.py) is liveness only - the process answers.

/metrics is open to the addresses in `metrics_allow` (loopback by default; the client address as the
trusted proxies report it, web/proxies.py, so a proxy on loopback does not open it to everyone), and
otherwise to a Bearer access token carrying the scope ``idbroker:metrics`` (RFC 6750: a client of the
client_credentials grant allowed that scope), checked like the UserInfo endpoint checks its tokens.

/readyz answers 200 when this worker can serve: the database answers a trivial query within
`READY_TIMEOUT` seconds, and a signing key is available (the keystore signs). Else 503 naming the
check that failed, so that a load balancer stops sending requests here.
"""

from __future__ import annotations

import logging

import anyio
from anyio import to_thread
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..oauth2.errors import InvalidTokenError, OAuth2Error
from ..web import metrics
from ..web.proxies import address_in, client_ip, networks
from .common import provider_of

METRICS_SCOPE = "idbroker:metrics"
READY_TIMEOUT = 2.0
log = logging.getLogger("idbroker.readyz")


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="idbroker"' + (f', error="{error}"' if error else "") + \
        (f', scope="{METRICS_SCOPE}"' if error == "insufficient_scope" else "")
    return {"WWW-Authenticate": value, "Cache-Control": "no-store"}


async def metrics_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    allowed = getattr(request.app.state, "metrics_allow", None)
    if allowed is None:
        allowed = request.app.state.metrics_allow = networks(provider.settings.metrics_allow)
    if not address_in(client_ip(request), allowed):
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse({"error": "invalid_token", "error_description": "a Bearer token with the scope "
                                 f"{METRICS_SCOPE} is required from this address"}, 401, headers=_challenge())
        try:
            claims = await provider.access_tokens.check(token.strip())
        except InvalidTokenError:
            return JSONResponse({"error": "invalid_token"}, 401, headers=_challenge("invalid_token"))
        except OAuth2Error as err:
            return JSONResponse(err.as_dict(), 401, headers=_challenge("invalid_token"))
        if METRICS_SCOPE not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "insufficient_scope",
                                 "error_description": f"the access token lacks the scope {METRICS_SCOPE}"},
                                403, headers=_challenge("insufficient_scope"))
    body = await to_thread.run_sync(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})


async def readyz_endpoint(request: Request) -> Response:
    provider = provider_of(request)

    def database() -> None:
        with provider.db.engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()

    def signing_key() -> None:
        provider.keys.sign({"readyz": True})

    checks: dict[str, str] = {}
    for name, check in (("database", database), ("signing_key", signing_key)):
        try:
            with anyio.fail_after(READY_TIMEOUT):
                await to_thread.run_sync(check, abandon_on_cancel=True)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is logged
            checks[name] = "failed"
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503,
                        headers={"Cache-Control": "no-store"})

