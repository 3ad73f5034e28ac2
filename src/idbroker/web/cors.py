"""CORS for the back-channel endpoints browser apps call directly (token, userinfo, revocation,
introspection, discovery, JWKS). They take no cookies, so any origin may call them; the
browser pages (authorize, login, consent, logout) get no CORS headers at all."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORS_PATHS = frozenset({"/oauth2/token", "/oauth2/userinfo", "/oauth2/userInfo", "/oauth2/revoke",
                        "/oauth2/introspect", "/.well-known/openid-configuration", "/.well-known/jwks.json"})
PREFLIGHT_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, DPoP"),
    (b"access-control-max-age", b"600"),
    (b"content-length", b"0"),
]


class CorsMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CORS_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"origin" not in headers:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await send({"type": "http.response.start", "status": 204, "headers": PREFLIGHT_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", b"*"),
                                      (b"access-control-expose-headers", b"WWW-Authenticate")]
            await send(message)

        await self.app(scope, receive, send_with_cors)
