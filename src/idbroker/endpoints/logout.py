"""OIDC RP-Initiated Logout 1.0, Back-Channel Logout 1.0 and Front-Channel Logout 1.0 (the
signed-out page holds an iframe per client of the session with a frontchannel_logout_uri, with
`iss` and `sid`, §3; a post_logout_redirect_uri is followed once they loaded); a session begun through a SAML upstream
with a SingleLogoutService goes on to the IdP's logout (pages/single_logout.py) once it ended here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from joserfc.errors import JoseError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..oauth2 import constants as c
from ..oauth2.errors import OAuth2Error
from ..pages.hosted import FORM_EXPIRED
from ..pages.single_logout import SingleLogout
from ..text import N_
from ..web.body import BodyError, read_form
from ..web.templating import PAGE_HEADERS
from .common import unique_params

if TYPE_CHECKING:
    from ..flow.journey import Journey
    from ..provider import Provider
    from ..store.models import Client
    from ..web.csrf import Csrf

# Shown on the error page (translated there).
HINT_INVALID = N_("The id_token_hint is not a valid ID token from this provider.")
HINT_NOT_ID_TOKEN = N_("The id_token_hint is not an ID token.")
HINT_FOREIGN = N_("The id_token_hint was not issued here.")
HINT_MISMATCH = N_("client_id does not match the id_token_hint.")
UNKNOWN_CLIENT = N_("The application is not registered.")
URI_NEEDS_CLIENT = N_("post_logout_redirect_uri needs id_token_hint or client_id.")
UNKNOWN_URI = N_("The post_logout_redirect_uri is not registered for this application.")


@dataclass
class LogoutRequest:
    client: Client | None = None
    hint: dict[str, Any] | None = None
    redirect_uri: str | None = None
    state: str | None = None


class BadLogoutRequest(Exception):
    pass


class Logout:
    def __init__(self, provider: Provider, journey: Journey, csrf: Csrf):
        self.journey = journey
        self.provider = provider
        self.csrf = csrf
        self.single_logout = SingleLogout(provider, journey)

    def _parse(self, params: dict[str, str]) -> LogoutRequest:
        p = self.provider
        out = LogoutRequest(state=params.get("state"))
        hint = params.get("id_token_hint")
        if hint:
            try:
                token = p.keys.verify(hint)  # expired hints are fine (RP-Initiated Logout §2)
            except (JoseError, ValueError):
                raise BadLogoutRequest(HINT_INVALID) from None
            claims = token.claims
            if token.header.get("typ", "JWT").lower() in (c.TYP_ACCESS_TOKEN, c.TYP_LOGOUT_TOKEN):
                raise BadLogoutRequest(HINT_NOT_ID_TOKEN)
            if claims.get("iss") != p.issuer:
                raise BadLogoutRequest(HINT_FOREIGN)
            out.hint = claims
        client_id = params.get("client_id")
        hinted = out.hint.get("aud") if out.hint else None
        if isinstance(hinted, list):
            hinted = hinted[0] if len(hinted) == 1 else None
        if client_id and hinted and client_id != hinted:
            raise BadLogoutRequest(HINT_MISMATCH)
        client_id = client_id or hinted
        if client_id:
            out.client = p.clients.get(client_id)
            if out.client is None:
                raise BadLogoutRequest(UNKNOWN_CLIENT)
        uri = params.get("post_logout_redirect_uri")
        if uri:
            if out.client is None:
                raise BadLogoutRequest(URI_NEEDS_CLIENT)
            if uri not in out.client.post_logout_redirect_uris:
                raise BadLogoutRequest(UNKNOWN_URI)
            out.redirect_uri = uri
        return out

    async def endpoint(self, request: Request) -> Response:
        try:
            if request.method == "POST":
                form = await read_form(request)
                params = unique_params([(k, str(v)) for k, v in form.multi_items()])
            else:
                params = unique_params(list(request.query_params.multi_items()))
            req = self._parse(params)
        except BodyError:
            return self.journey.error_page(request, FORM_EXPIRED, 400)
        except (BadLogoutRequest, OAuth2Error) as exc:
            message = exc.args[0] if isinstance(exc, BadLogoutRequest) else exc.description
            return self.journey.error_page(request, message, 400)
        found = self.journey.current(request)
        confirmed = request.method == "POST" and params.get("confirm") == "yes" and \
            self.csrf.valid(request, params.get("csrf_token"))
        hint_matches = bool(found and req.hint  # the sub the hinted client sees (pairwise, OIDC Core §8.1)
                            and req.hint.get("sub") == self.provider.id_tokens.subject(req.client, found[1].sub)
                            and req.hint.get("sid") in (None, found[0].sid))
        if found is not None and not (confirmed or hint_matches):
            token, fresh = self.csrf.token(request)
            keep = {k: v for k, v in params.items() if k not in ("csrf_token", "confirm")}
            response = self.journey.pages.render(request, "login/logout.html", csrf_token=token, params=keep,
                                                 client=req.client, user=found[1])
            self.csrf.set_cookie(response, fresh)
            return response
        task = None
        frames: list[str] = []
        if found is not None:
            frames = await run_in_threadpool(self._frontchannel, found[0].sid)
            signout = self.provider.signout
            task = BackgroundTask(signout.notify, await run_in_threadpool(signout.end, [found[0].sid], found[1].sub))
        after = _with_state(req.redirect_uri, req.state) if req.redirect_uri else None
        upstream = None
        if found is not None and found[0].idp:
            upstream = await self.single_logout.start(found[0].sid, after=after,
                                                      client_id=req.client.client_id if req.client else None)
        if upstream is not None:
            response: Response = upstream
        elif after and not frames:
            response = RedirectResponse(after, status_code=303)
        else:
            origins = " ".join(sorted({_origin(u) for u in frames})) or "'none'"
            response = self.journey.pages.render(
                request, "login/logged_out.html", client=req.client, frontchannel=frames, after=after,
                headers={"Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"] + f"; frame-src {origins}"})
        response.delete_cookie(self.journey.session_cookie, path="/")
        response.background = task
        return response


    def _frontchannel(self, sid: str) -> list[str]:
        """Front-Channel Logout 1.0 §3: the frontchannel_logout_uri of each client of the session,
        with iss and sid (§2: an RP may require them; we always send them)."""
        out = []
        for client_id in self.provider.sessions.clients_of(sid):
            client = self.provider.clients.get(client_id)
            if client is not None and client.frontchannel_logout_uri:
                out.append(_with_params(client.frontchannel_logout_uri,
                                        {"iss": self.provider.issuer, "sid": sid}))
        return out


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _with_params(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _with_state(uri: str, state: str | None) -> str:
    if state is None:
        return uri
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode({'state': state})}" if parts.query else urlencode({"state": state})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
