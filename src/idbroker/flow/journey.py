"""An authorization request from arrival to response: which prompt the user must pass
(login, account selection, consent), and the response once they have (OIDC Core §3.1.2)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..clients.metadata import offers
from ..mfa.policy import effective_policy, session_acr
from ..mfa.policy import requirement as mfa_requirement
from ..oauth2 import authorize_checks, fapi, jarm
from ..oauth2 import constants as c
from ..oauth2.authorize_checks import UNKNOWN_CLIENT, UNKNOWN_REDIRECT_URI, AuthorizationRequest
from ..oauth2.errors import (
    AccessDeniedError,
    BadAuthorizationRequest,
    ConsentRequiredError,
    InteractionRequiredError,
    LoginRequiredError,
    OAuth2Error,
)
from ..oauth2.grants.base import ttl
from ..oidc.claims import id_token_claims, requested_claims, upstream_claims, user_claims
from ..store.db import aware
from ..text import N_
from .consents import Consents
from .door import Door
from .interactions import Interactions
from .responses import authorization_response

RESUME = "oauth2/authorize/resume"  # a "prompt" that sends the browser back to `resume`, to be answered
EXPIRED = N_("This sign-in request has expired. Go back to the application and start again.")

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..accounts.sessions import SessionService
    from ..audit import Audit
    from ..clients.registry import ClientRegistry
    from ..federation.registry import UpstreamRegistry
    from ..mfa.service import MfaService
    from ..oauth2.grant_store import GrantStore
    from ..oauth2.tokens import AccessTokens
    from ..oidc.id_token import IdTokens
    from ..settings import Settings
    from ..store.db import Database
    from ..store.models import BrowserSession, Grant, Interaction, User
    from ..web.templating import Pages


class Journey:
    def __init__(self, *, settings: Settings, db: Database, clients: ClientRegistry, sessions: SessionService,
                 mfa: MfaService, grants: GrantStore, access_tokens: AccessTokens, id_tokens: IdTokens,
                 audit: Audit, pages: Pages, upstreams: UpstreamRegistry):
        self.settings = settings
        self.upstreams = upstreams  # for idp_hint (`park`)
        self.db = db
        self.clients = clients
        self.sessions = sessions
        self.mfa = mfa
        self.grants = grants
        self.access_tokens = access_tokens
        self.id_tokens = id_tokens
        self.pages = pages
        self.jarm = jarm.Jarm(settings.issuer, id_tokens.keys)  # JWT-secured responses (oauth2/jarm.py)
        self.interactions = Interactions(db, settings.interaction_ttl)
        self.consents = Consents(db)
        name = settings.cookie_name
        self.session_cookie = f"{name}_session"
        self.interaction_cookie = f"{name}_interaction"
        self.device_cookie = f"{name}_device"  # "remember this device" (second factor)
        self.door = Door(self, db=db, sessions=sessions, audit=audit, mfa=mfa, settings=settings)

    # -- entry points ----------------------------------------------------------------------------
    def start(self, request: Request, params: dict[str, str]) -> Response:
        """The authorization endpoint, for GET and POST."""
        try:
            req = authorize_checks.validate(self.clients, params)
        except BadAuthorizationRequest as bad:
            return self.error_page(request, bad.message, bad.status_code, bad.params)
        except OAuth2Error as err:
            return self.redirect_error(request, err.request, err)  # type: ignore[attr-defined]
        return self.proceed(request, req, None)

    def resume(self, request: Request, interaction_id: str | None) -> Response:
        """Back from the login or consent page."""
        interaction = self.interactions.get(interaction_id)
        if interaction is None or request.cookies.get(self.interaction_cookie) != interaction.id:
            return self.error_page(request, EXPIRED, 400)
        try:
            req = self._unpark(interaction)
        except BadAuthorizationRequest as bad:
            return self.error_page(request, bad.message, bad.status_code, bad.params)
        except OAuth2Error as err:
            return self.redirect_error(request, err.request, err)  # type: ignore[attr-defined]
        return self.proceed(request, req, interaction)

    # -- decisions -------------------------------------------------------------------------------
    def current(self, request: Request) -> tuple[BrowserSession, User] | None:
        return self.sessions.lookup(request.cookies.get(self.session_cookie))

    def proceed(self, request: Request, req: AuthorizationRequest, interaction: Interaction | None) -> Response:
        assert req.client is not None
        found = self.current(request)
        logged_in_here = found is not None and interaction is not None and interaction.login_sid == found[0].sid
        if not logged_in_here and "create" in req.prompt and interaction is None and self._signup_open(req):
            return self.park(req, interaction, "signup")  # OIDC Prompt Create 1.0 §4: straight to sign-up
        if not logged_in_here:
            if "none" in req.prompt:
                if found is None or self._needs_fresh_login(req, found[0]):
                    return self.redirect_error(request, req, LoginRequiredError("the user is not signed in"))
            elif found is None or self._needs_fresh_login(req, found[0]) or "login" in req.prompt \
                    or "select_account" in req.prompt:
                return self.park(req, interaction, "login")
        assert found is not None
        session, user = found
        unmet = self.unmet_claims(req, user, session.acr)
        if unmet is not None:
            if isinstance(unmet, LoginRequiredError) and not logged_in_here and "none" not in req.prompt:
                return self.park(req, interaction, "login")  # perhaps the user asked for signs in
            return self.redirect_error(request, req, unmet)
        step = self.next_prompt(request, req, interaction, user, list(session.amr))
        if step is not None:
            prompt, refusal = step
            if "none" in req.prompt:
                return self.redirect_error(request, req, refusal)
            return self.park(req, interaction, prompt)
        with self.db.session() as s:
            issued = self.record_grant(req, session, user, interaction, s)
        return self.respond(request, req, session, user, interaction, *issued)

    def next_prompt(self, request: Request, req: AuthorizationRequest, interaction: Interaction | None, user: User,
                    amr: list[str]) -> tuple[str, OAuth2Error] | None:
        """Once the user is signed in (with the methods `amr`): the page they must pass before the
        client gets its answer, with the error prompt=none gets instead; None when it may be
        answered. Reads only, and only what can change the answer."""
        assert req.client is not None
        if self.unmet_claims(req, user, session_acr(amr)) is not None:
            return RESUME, InteractionRequiredError("the claims request cannot be met")  # `proceed` answers
        # Account prompts between login and consent: the user's state decides, so coming back
        # after verifying or accepting simply passes them.
        settings = self.settings
        if settings.require_email_verification and not user.email_verified:
            return "verify-email", InteractionRequiredError("the email address is not verified")
        if settings.terms_version and user.terms_version != settings.terms_version:
            return "terms", InteractionRequiredError("new terms must be accepted")
        needed = mfa_requirement(
            policy=effective_policy(settings.mfa_policy, req.client.mfa_policy), acr_values=req.acr_values,
            session_amr=amr, enrolled=lambda: self.mfa.enrolled(user.id),
            # max_age asks for a fresh authentication: a remembered device does not stand in for it.
            remembered=lambda: req.max_age is None
            and self.mfa.is_remembered(request.cookies.get(self.device_cookie), user.id))
        if needed is not None:
            return "mfa", InteractionRequiredError("a second factor is required")
        # Consent given on this interaction's page stands; else prompt=consent asks again and a
        # remembered consent covering the scopes (one query, made only when it decides) passes.
        consent_needed = not req.client.first_party and not (interaction and interaction.consented) and (
            "consent" in req.prompt or not self.consents.covers(user.id, req.client.client_id, req.scopes))
        if consent_needed:
            return "consent", ConsentRequiredError("the user has not consented")
        return None

    def unmet_claims(self, req: AuthorizationRequest, user: User, acr: str | None) -> OAuth2Error | None:
        """What the claims parameter demands and this sign-in cannot give: a `sub` asked for by
        value that is not this user's (OIDC Core §5.5.1: answered only for that user), or an
        essential acr none of whose values can be met (§5.5.1.1: a failed authentication)."""
        wanted = _asked(req, "sub").get("value")
        if wanted is not None and wanted != self.id_tokens.subject(req.client, user.sub):
            return LoginRequiredError("the signed-in user is not the one the claims request names")
        if self._claimed_acr(req, acr) is None:
            return AccessDeniedError("the essential acr cannot be met")
        return None

    @staticmethod
    def _claimed_acr(req: AuthorizationRequest, acr: str | None) -> str | None:
        """The acr to state (OIDC Core §5.5.1.1): with an essential acr asked for with values, one of
        them (a second factor meets the password level too), None when none can be; else `acr`."""
        asked = _asked(req, "acr")
        values = [asked["value"]] if isinstance(asked.get("value"), str) else asked.get("values") or []
        if not asked.get("essential") or not values or acr in values:
            return acr
        if acr == c.ACR_MFA and c.ACR_PASSWORD in values:
            return c.ACR_PASSWORD
        return None if c.ACR_MFA not in values else acr

    def _signup_open(self, req: AuthorizationRequest) -> bool:
        """Whether the client's users may sign up here (else prompt=create shows the sign-in page)."""
        client = req.client
        assert client is not None
        enabled = self.settings.signup_enabled if client.signup_enabled is None else client.signup_enabled
        return bool(enabled) and client.local_accounts

    def _needs_fresh_login(self, req: AuthorizationRequest, session: BrowserSession) -> bool:
        if req.max_age is None:
            return False
        return time.time() - aware(session.auth_time).timestamp() > req.max_age  # OIDC Core §3.1.2.1

    def park(self, req: AuthorizationRequest, interaction: Interaction | None, prompt: str) -> Response:
        assert req.client is not None
        if interaction is None:
            interaction = self.interactions.create(req.client.client_id, req.parked())
        # To sign in with an idp_hint naming a provider: straight there, one round trip before the
        # sign-in page would send the browser on (pages/sign_in.py).
        target = ((self.hinted_start(req, interaction) if prompt == "login" else None)
                  or self.settings.issuer + f"/{prompt}?" + urlencode({"interaction": interaction.id}))
        response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(self.interaction_cookie, interaction.id, httponly=True,
                            secure=self.settings.secure_cookies, samesite="lax", path="/",
                            max_age=self.settings.interaction_ttl)
        return response

    def hinted_start(self, req: AuthorizationRequest, interaction: Interaction) -> str | None:
        """Where the sign-in of `interaction` starts when its idp_hint (Keycloak's kc_idp_hint,
        Cognito's identity_provider) names an upstream provider the client offers; else None."""
        hint = req.params.get("idp_hint")
        if not hint or not offers(req.client, hint) or self.upstreams.row(hint) is None:
            return None
        return self.settings.issuer + f"/idp/{hint}/start?" + urlencode({"interaction": interaction.id})

    # -- the response ------------------------------------------------------------------------
    def record_grant(self, req: AuthorizationRequest, session: BrowserSession, user: User,
                     interaction: Interaction | None, s: Session) -> tuple[Grant, dict[str, str]]:
        """The writes of an answered request, in the transaction `s`: the grant, the session's
        membership (for logout), the code, and the finished interaction. Returns the grant and
        the response parameters so far (the code)."""
        client = req.client
        assert client is not None
        offline = c.SCOPE_OFFLINE in req.scopes
        out: dict[str, str] = {}
        grant = self.grants.create_grant(
            client_id=client.client_id, user_id=user.id, sid=session.sid, scope=req.scope,
            auth_time=aware(session.auth_time), amr=list(session.amr), acr=self._claimed_acr(req, session.acr),
            idp=session.idp,
            ttl=max(ttl(self.settings.tokens, client, "refresh_token_ttl") if offline else 0,
                    ttl(self.settings.tokens, client, "access_token_ttl"), self.settings.code_ttl), session=s)
        grant.claims = req.claims or None  # OIDC Core §5.5: for the token endpoint and userinfo
        s.flush()  # the grant before its code: the models have no relationship to order them by
        self.sessions.add_client(session.sid, client.client_id, session=s)
        if req.returns(c.RESPONSE_CODE):
            out["code"] = self.grants.create_code(grant, redirect_uri=req.params.get("redirect_uri"),
                                               nonce=req.nonce, code_challenge=req.code_challenge,
                                               ttl=fapi.code_ttl(client, self.settings.code_ttl), session=s)
        if interaction is not None:
            self.interactions.finish(interaction.id, session=s)
        return grant, out

    def respond(self, request: Request, req: AuthorizationRequest, session: BrowserSession, user: User,
                interaction: Interaction | None, grant: Grant, out: dict[str, str]) -> Response:
        """The answer to the client, once `record_grant` is committed: tokens of the implicit
        and hybrid flows added (OIDC Core §3.2.2.5, §3.3.2.5), in the request's response mode;
        the interaction cookie goes."""
        client = req.client
        assert client is not None
        access_token = None
        auth_time = int(aware(session.auth_time).timestamp())
        if req.returns("token"):
            at = self.access_tokens.issue(client_id=client.client_id, sub=user.sub, scope=req.scope,
                                       ttl=ttl(self.settings.tokens, client, "access_token_ttl"), grant_id=grant.id,
                                       auth_time=auth_time, acr=session.acr, amr=list(session.amr),
                                       sid=session.sid, idp=session.idp)
            access_token = at.token
            out.update(access_token=at.token, token_type="Bearer", expires_in=str(at.expires_in),
                       scope=req.scope)
        if req.returns(c.RESPONSE_ID_TOKEN):
            # OIDC Core §5.4: with no access token to fetch userinfo, the claims go in the ID token.
            alone = req.response_type == c.RESPONSE_ID_TOKEN
            extra: dict[str, Any] = user_claims(user, req.scopes) if alone else {}
            extra.update(upstream_claims(session.idp) | id_token_claims(user, req.scopes)
                         | requested_claims(user, req.claims, "id_token", req.scopes))
            extra.pop("sub", None)
            out["id_token"] = self.id_tokens.issue(
                client_id=client.client_id, alg=client.id_token_signed_response_alg,
                sub=self.id_tokens.subject(client, user.sub),
                ttl=ttl(self.settings.tokens, client, "id_token_ttl"), auth_time=auth_time, nonce=req.nonce,
                sid=session.sid, acr=self._claimed_acr(req, session.acr), amr=list(session.amr),
                access_token=access_token, code=out.get("code"), extra=extra)
        response = self.deliver(request, req, out)
        if interaction is not None:
            response.delete_cookie(self.interaction_cookie, path="/")
        return response

    def redirect_error(self, request: Request, req: AuthorizationRequest, err: OAuth2Error) -> Response:
        """RFC 6749 §4.1.2.1: the redirect URI is trusted by now."""
        return self.deliver(request, req, err.as_dict())

    def deliver(self, request: Request | None, req: AuthorizationRequest, params: dict[str, str]) -> Response:
        """The response parameters in the request's mode; in a JARM mode, as the claims of one
        signed JWT sent as `response` (JARM §2.1, with state and iss inside)."""
        if jarm.is_jarm(req.response_mode) and req.client is not None:
            inner = dict(params) | ({"state": req.state} if req.state is not None else {})
            token = self.jarm.wrap(req.client, inner)
            return authorization_response(self.pages, request, req.redirect_uri, jarm.carrier(req.response_mode),
                                          {jarm.RESPONSE: token}, issuer=None, state=None)
        return authorization_response(self.pages, request, req.redirect_uri, req.response_mode, params,
                                      issuer=self.settings.issuer, state=req.state)

    def error_page(self, request: Request, message: str, status: int,
                   params: dict[str, Any] | None = None) -> Response:
        """`message` is a message id (translated on the page, `params` filling its placeholders)
        or developer-facing text."""
        return self.pages.render(request, "error.html", status=status, message=message, params=params or {})

    # -- the parked request ----------------------------------------------------------------------
    def parked(self, value: str | None, request: Request | None = None
               ) -> tuple[Interaction, AuthorizationRequest] | tuple[None, None]:
        """The one reader of a parked request, for every page: the interaction `value` names and
        its request; (None, None) when it has expired, when its client or redirect URI is no
        longer registered, or, given the `request`, when this browser does not hold it (its
        cookie): only there can the flow resume."""
        interaction = self.interactions.get(value)
        if interaction is None or (request is not None
                                   and request.cookies.get(self.interaction_cookie) != interaction.id):
            return None, None
        try:
            return interaction, self._unpark(interaction)
        except (BadAuthorizationRequest, OAuth2Error):
            return None, None

    def _unpark(self, interaction: Interaction) -> AuthorizationRequest:
        """The request as validated when it was parked (`park`). The registration may have changed
        since: the client must still exist and list the redirect URI, else nothing is answered
        there (RFC 6749 §3.1.2.3); the rest is not checked again."""
        kept = interaction.params
        if not isinstance(kept.get("params"), dict):  # parked, unvalidated, by an earlier version
            return authorize_checks.validate(self.clients, kept)
        client = self.clients.get(interaction.client_id)
        if client is None:
            raise BadAuthorizationRequest(UNKNOWN_CLIENT)
        if kept["redirect_uri"] not in client.redirect_uris and \
                not authorize_checks.loopback_match(kept["redirect_uri"], client.redirect_uris):
            raise BadAuthorizationRequest(UNKNOWN_REDIRECT_URI)
        return AuthorizationRequest.unparked(kept, client)

    def resume_url(self, interaction_id: str) -> str:
        return self.settings.issuer + "/oauth2/authorize/resume?" + urlencode(
            {"interaction": interaction_id})


def _asked(req: AuthorizationRequest, claim: str) -> dict[str, Any]:
    """The request for `claim` in the ID token under the claims parameter ({} when none)."""
    asked = (req.claims.get("id_token") or {}).get(claim)
    return asked if isinstance(asked, dict) else {}
