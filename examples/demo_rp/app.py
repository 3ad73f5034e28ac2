"""A small relying party that shows what the broker does, with no OpenID library: Starlette, httpx
and joserfc (all idbroker dependencies), so that `idbroker demo` runs on a plain install.

    /             sign-in link, or the ID token's claims, userinfo and buttons
    /login        authorization request: code flow + PKCE S256 (RFC 7636) + nonce + state
    /callback     checks state and `iss` (RFC 9207), redeems the code, validates the ID token
                  (OIDC Core §3.1.3.7: signature against the JWKS, iss, aud, exp, nonce), reads userinfo
    /refresh      refresh_token grant (the broker rotates the refresh token)
    /call-api     calls /api/hello with the access token
    /api/hello    a protected API: validates the JWT access token (RFC 9068 §4) against the JWKS
    /logout       RP-initiated logout at the broker's end_session_endpoint
    /spa/         the single-page example (examples/spa, oidc-client-ts), if present

Configuration from the environment (set by `idbroker demo`): DEMO_RP_ISSUER, DEMO_RP_CLIENT_ID,
DEMO_RP_CLIENT_SECRET, DEMO_RP_URL (its own base URL), DEMO_SPA_CLIENT_ID, DEMO_SPA_DIR.
Sessions are kept in memory: a demo, not a pattern for production.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

COOKIE = "demo_rp"
ALGS = ["ES256", "RS256"]
PENDING_TTL = 600


@dataclass
class Config:
    issuer: str
    client_id: str
    client_secret: str
    base_url: str
    spa_client_id: str = ""
    spa_dir: str = ""

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(env["DEMO_RP_ISSUER"].rstrip("/"), env["DEMO_RP_CLIENT_ID"], env["DEMO_RP_CLIENT_SECRET"],
                   env.get("DEMO_RP_URL", "http://localhost:3000").rstrip("/"), env.get("DEMO_SPA_CLIENT_ID", ""),
                   env.get("DEMO_SPA_DIR", ""))


@dataclass
class State:
    config: Config
    metadata: dict[str, Any] = field(default_factory=dict)
    jwks: KeySet | None = None
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # state -> verifier, nonce
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # cookie -> tokens, claims, userinfo

    async def discover(self, http: httpx.AsyncClient) -> dict[str, Any]:
        if not self.metadata:
            answer = await http.get(self.config.issuer + "/.well-known/openid-configuration")
            answer.raise_for_status()
            self.metadata = answer.json()
            if self.metadata.get("issuer") != self.config.issuer:  # OIDC Discovery §4.3
                raise ValueError(f"discovery names issuer {self.metadata.get('issuer')!r}")
        return self.metadata

    async def keys(self, http: httpx.AsyncClient, kid: str | None) -> KeySet:
        """The broker's JWKS, fetched again when a token names a key we have not seen (rotation)."""
        if self.jwks is None or (kid and not any(k.kid == kid for k in self.jwks.keys)):
            meta = await self.discover(http)
            answer = await http.get(meta["jwks_uri"])
            answer.raise_for_status()
            self.jwks = KeySet.import_key_set(answer.json())
        return self.jwks

    async def verify(self, http: httpx.AsyncClient, token: str, **expected: Any) -> dict[str, Any]:
        """Signature, then the registered claims `expected` names (value) and exp (always)."""
        header = json.loads(_b64decode(token.split(".")[0]))
        decoded = jwt.decode(token, await self.keys(http, header.get("kid")), algorithms=ALGS)
        options: dict[str, Any] = {"exp": {"essential": True}}
        for name, value in expected.items():
            options[name] = {"essential": True, "value": value}
        jwt.JWTClaimsRegistry(leeway=30, **options).validate(decoded.claims)
        return {"header": decoded.header, "claims": decoded.claims}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- pages ------------------------------------------------------------------------------------------
STYLE = """body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
pre{background:#f4f4f5;padding:1rem;overflow:auto;border-radius:.5rem}form{display:inline}
button,a.button{font:inherit;padding:.4rem .9rem;margin:.2rem;border:1px solid #555;border-radius:.4rem;
background:#fff;color:#111;text-decoration:none;cursor:pointer}.note{color:#555}.error{color:#a00}"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8>"
                        f"<meta name=viewport content='width=device-width,initial-scale=1'>"
                        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
                        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>", status_code=status)


def block(heading: str, data: Any, ident: str) -> str:
    return (f"<h2>{html.escape(heading)}</h2><pre id={ident}>"
            f"{html.escape(json.dumps(data, indent=2, sort_keys=True))}</pre>")


def create(config: Config | None = None) -> Starlette:
    state = State(config or Config.from_env())
    cfg = state.config

    def session_of(request: Request) -> dict[str, Any] | None:
        return state.sessions.get(request.cookies.get(COOKIE, ""))

    async def home(request: Request) -> Response:
        session = session_of(request)
        message = ""
        if request.query_params.get("state") and request.query_params.get("state") in state.pending:
            state.pending.pop(request.query_params["state"])
            message = "<p id=signed-out>You are signed out of the demo and of the broker.</p>"
        spa = "<p><a href=/spa/>The single-page example (oidc-client-ts)</a></p>" if cfg.spa_dir else ""
        if session is None:
            return page("idbroker demo", f"{message}<p>This application signs you in through "
                        f"<code>{html.escape(cfg.issuer)}</code> (client <code>{html.escape(cfg.client_id)}</code>)."
                        f"</p><p><a class=button id=sign-in href=/login>Sign in</a></p>{spa}")
        who = session["userinfo"].get("email") or session["claims"].get("email") or session["claims"]["sub"]
        body = (f"<p>Signed in as <strong id=who>{html.escape(str(who))}</strong>.</p>"
                f"<p><form method=post action=/refresh><button id=refresh>Refresh tokens</button></form>"
                f"<form method=post action=/call-api><button id=call-api>Call the protected API</button></form>"
                f"<a class=button id=sign-out href=/logout>Sign out</a></p>")
        if session.get("api") is not None:
            body += block("Protected API answer (/api/hello)", session["api"], "api")
        body += f"<p class=note id=refreshed>Tokens refreshed {session['refreshes']} time(s).</p>"
        body += block("ID token claims (validated)", session["claims"], "claims")
        body += block("Userinfo", session["userinfo"], "userinfo")
        body += block("Token response (scope, expiry)", {k: v for k, v in session["tokens"].items()
                                                         if k in ("scope", "expires_in", "token_type")}, "tokens")
        return page("idbroker demo", body + spa)

    async def login(request: Request) -> Response:
        async with httpx.AsyncClient() as http:
            meta = await state.discover(http)
        now = time.time()
        for key in [k for k, v in state.pending.items() if v["at"] < now - PENDING_TTL]:
            state.pending.pop(key, None)
        verifier, nonce, st = secrets.token_urlsafe(48), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        state.pending[st] = {"verifier": verifier, "nonce": nonce, "at": now, "kind": "login"}
        params = {"response_type": "code", "client_id": cfg.client_id, "redirect_uri": cfg.base_url + "/callback",
                  "scope": "openid email profile offline_access", "state": st, "nonce": nonce,
                  "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
                  "code_challenge_method": "S256"}
        return RedirectResponse(meta["authorization_endpoint"] + "?" + urlencode(params), status_code=303)

    async def callback(request: Request) -> Response:
        q = request.query_params
        pending = state.pending.pop(q.get("state", ""), None)
        if pending is None or pending.get("kind") != "login":
            return page("Sign-in failed", "<p class=error>Unknown or expired state. <a href=/>Start again</a></p>", 400)
        if q.get("iss") and q["iss"] != cfg.issuer:  # RFC 9207 §2.4
            return page("Sign-in failed", "<p class=error>The answer names another issuer.</p>", 400)
        if "error" in q:
            return page("Sign-in failed", f"<p class=error>{html.escape(q['error'])}: "
                        f"{html.escape(q.get('error_description', ''))}</p><p><a href=/>Back</a></p>", 400)
        async with httpx.AsyncClient() as http:
            meta = await state.discover(http)
            answer = await http.post(meta["token_endpoint"], auth=(cfg.client_id, cfg.client_secret),
                                     data={"grant_type": "authorization_code", "code": q.get("code", ""),
                                           "redirect_uri": cfg.base_url + "/callback",
                                           "code_verifier": pending["verifier"]})
            if answer.status_code != 200:
                return page("Sign-in failed", f"<pre>{html.escape(answer.text)}</pre>", 400)
            tokens = answer.json()
            try:
                checked = await state.verify(http, tokens["id_token"], iss=cfg.issuer, aud=cfg.client_id,
                                             nonce=pending["nonce"])
            except (JoseError, ValueError, KeyError) as exc:
                return page("Sign-in failed", f"<p class=error>ID token rejected: {html.escape(str(exc))}</p>", 400)
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            info = await http.get(meta["userinfo_endpoint"], headers=bearer)
        userinfo = info.json() if info.status_code == 200 else {"error": info.status_code}
        if userinfo.get("sub") != checked["claims"]["sub"]:  # OIDC Core §5.3.2
            return page("Sign-in failed", "<p class=error>userinfo is about someone else.</p>", 400)
        sid = secrets.token_urlsafe(32)
        state.sessions[sid] = {"tokens": tokens, "claims": checked["claims"], "userinfo": userinfo, "refreshes": 0,
                               "api": None}
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="lax")
        return response

    async def refresh(request: Request) -> Response:
        session = session_of(request)
        if session is None or "refresh_token" not in session["tokens"]:
            return RedirectResponse("/", status_code=303)
        async with httpx.AsyncClient() as http:
            meta = await state.discover(http)
            answer = await http.post(meta["token_endpoint"], auth=(cfg.client_id, cfg.client_secret),
                                     data={"grant_type": "refresh_token",
                                           "refresh_token": session["tokens"]["refresh_token"]})
        if answer.status_code != 200:
            return page("Refresh failed", f"<pre>{html.escape(answer.text)}</pre><p><a href=/>Back</a></p>", 400)
        session["tokens"] = {**session["tokens"], **answer.json()}
        session["refreshes"] += 1
        return RedirectResponse("/", status_code=303)

    async def call_api(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/", status_code=303)
        async with httpx.AsyncClient() as http:
            answer = await http.get(cfg.base_url + "/api/hello",
                                    headers={"Authorization": f"Bearer {session['tokens']['access_token']}"})
        session["api"] = {"status": answer.status_code, "body": answer.json()}
        return RedirectResponse("/", status_code=303)

    async def api_hello(request: Request) -> Response:
        """RFC 6750 bearer token, validated as RFC 9068 §4 says: typ at+jwt, signature, iss, aud, exp."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if scheme.lower() != "bearer" or not token:
            return JSONResponse({"error": "invalid_request"}, 401, headers={"WWW-Authenticate": "Bearer"})
        try:
            async with httpx.AsyncClient() as http:
                checked = await state.verify(http, token, iss=cfg.issuer, aud=cfg.issuer)
        except (JoseError, ValueError) as exc:
            return JSONResponse({"error": "invalid_token", "error_description": str(exc)}, 401, headers=challenge)
        if str(checked["header"].get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            return JSONResponse({"error": "invalid_token", "error_description": "not an access token"}, 401,
                                headers=challenge)
        claims = checked["claims"]
        return JSONResponse({"hello": claims["sub"], "client_id": claims.get("client_id"),
                             "scope": claims.get("scope")})

    async def logout(request: Request) -> Response:
        session = state.sessions.pop(request.cookies.get(COOKIE, ""), None)
        async with httpx.AsyncClient() as http:
            meta = await state.discover(http)
        st = secrets.token_urlsafe(24)
        state.pending[st] = {"at": time.time(), "kind": "logout"}
        params = {"post_logout_redirect_uri": cfg.base_url + "/", "state": st, "client_id": cfg.client_id}
        if session is not None:
            params["id_token_hint"] = session["tokens"]["id_token"]
        response = RedirectResponse(meta["end_session_endpoint"] + "?" + urlencode(params), status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def spa_config(request: Request) -> Response:
        return JSONResponse({"authority": cfg.issuer, "client_id": cfg.spa_client_id,
                             "redirect_uri": cfg.base_url + "/spa/",
                             "post_logout_redirect_uri": cfg.base_url + "/spa/"})

    routes = [Route("/", home), Route("/login", login), Route("/callback", callback),
              Route("/refresh", refresh, methods=["POST"]), Route("/call-api", call_api, methods=["POST"]),
              Route("/api/hello", api_hello), Route("/logout", logout), Route("/spa/config.json", spa_config)]
    if cfg.spa_dir and Path(cfg.spa_dir).is_dir():
        routes.append(Mount("/spa", StaticFiles(directory=cfg.spa_dir, html=True)))
    return Starlette(routes=routes)
