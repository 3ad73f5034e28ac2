"""The one door: every way of signing in (password, passkey, the address proven after sign-up,
and upstream or migrated sign-ins to come) ends in `Door.finish_login`, as node-oidc-provider's
`interactionFinished` ends each of its logins. So the session, its cookie, the audit event and the
next step are decided in one place, and a new way of signing in cannot forget one of them.

The next step: with the authorization request parked in this browser, the journey's prompts
(verification, terms, second factor, consent) or the answer to the client; without one, a second
factor when the policy wants one now, then the page the user was going to. A second factor passed
later, at /mfa, joins the session through `Door.factor_passed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import audit
from ..mfa.policy import requirement as mfa_requirement
from ..web import request_log
from ..web.navigation import local_path
from ..web.proxies import client_ip

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..accounts.sessions import SessionService
    from ..audit import Audit
    from ..mfa.service import MfaService
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..settings import Settings
    from ..store.db import Database
    from ..store.models import BrowserSession, Grant, Interaction, User
    from .interactions import Interactions


class Journey(Protocol):
    """What the door asks of the journey of an authorization request (flow/journey.py), which
    builds the door: its cookies, the browser's session, the next prompt, and the answer."""

    session_cookie: str
    interaction_cookie: str
    device_cookie: str
    interactions: Interactions

    def current(self, request: Request) -> tuple[BrowserSession, User] | None: ...

    def next_prompt(self, request: Request, req: AuthorizationRequest, interaction: Interaction | None, user: User,
                    amr: list[str]) -> tuple[str, Any] | None: ...

    def park(self, req: AuthorizationRequest, interaction: Interaction | None, prompt: str) -> Response: ...

    def record_grant(self, req: AuthorizationRequest, session: BrowserSession, user: User,
                     interaction: Interaction | None, s: Session) -> tuple[Grant, dict[str, str]]: ...

    def respond(self, request: Request, req: AuthorizationRequest, session: BrowserSession, user: User,
                interaction: Interaction | None, grant: Grant, out: dict[str, str]) -> Response: ...

    def parked(self, value: str | None, request: Request | None = None
               ) -> tuple[Interaction, AuthorizationRequest] | tuple[None, None]: ...

    def resume_url(self, interaction_id: str) -> str: ...


@dataclass(frozen=True)
class Authenticated:
    """Who signed in and how. `amr` and `acr` go into the session (RFC 8176, OIDC Core §2),
    `method` and `detail` into the audit event. `remember` is the answer to "keep me signed in":
    True, a cookie that outlives the browser and a session of session_ttl; False, a cookie that
    ends with the browser and a session of at most short_session_ttl; None where the page does
    not ask, a cookie that ends with the browser and a session of session_ttl."""

    user: User
    amr: list[str]
    acr: str | None
    method: str
    remember: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    idp: str | None = None  # the upstream provider signed in through: the `idp` claim


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


@dataclass
class Login:
    """A sign-in through the door in its two halves, for a caller whose transaction it joins
    (the password check): `write` in that transaction, `response` once it is committed (the
    implicit flow's tokens refer to the grant written)."""

    door: Door
    request: Request
    who: Authenticated
    interaction: Interaction | None
    req: AuthorizationRequest | None
    landing: str | Response
    reply: Callable[[str], Response]
    previous: BrowserSession | None        # the browser's session until now, ended by this one
    step: tuple[str, Any] | None = None   # the prompt the parked request needs next, when answered here
    here: bool = False                     # the parked request is decided by this sign-in
    cookie: str = ""
    session: BrowserSession | None = None
    issued: tuple[Grant, dict[str, str]] | None = None

    def write(self, s: Session) -> Login:
        """The new session (the browser's previous one ended), the login on the parked request,
        or, when it can be answered at once, its grant; and the audit event: one transaction."""
        door, request, who = self.door, self.request, self.who
        journey = door.journey
        settings = door.settings
        ttl = None if who.remember is None else \
            settings.session_ttl if who.remember else min(settings.short_session_ttl, settings.session_ttl)
        ip = client_ip(request)
        request_log.note(sub=who.user.sub)  # the log fields of this request (web/request_log.py)
        user_agent = request.headers.get("user-agent")
        self.cookie, session = door.sessions.create(who.user, list(who.amr), who.acr, user_agent=user_agent,
                                                    ip=ip, ttl=ttl, idp=who.idp, session=s)
        self.session = session
        if self.previous is not None:
            door.sessions.end(self.previous.sid, session=s)
        answer = self.here and self.step is None
        if answer:
            assert self.req is not None
            self.issued = journey.record_grant(self.req, session, who.user, self.interaction, s)
        elif self.interaction is not None:
            journey.interactions.mark(self.interaction.id, login_sid=session.sid, session=s)
        door.audit.record(audit.LOGIN_SUCCEEDED, user_id=who.user.id, ip=ip, user_agent=user_agent,
                          method=who.method, session=s, **who.detail)
        return self

    def response(self) -> Response:
        """The next step, with the session cookie."""
        journey, session = self.door.journey, self.session
        assert session is not None
        response: Response
        if self.issued is not None:
            assert self.req is not None
            response = journey.respond(self.request, self.req, session, self.who.user, self.interaction,
                                       *self.issued)
        elif self.here and self.step is not None:
            assert self.req is not None
            response = journey.park(self.req, self.interaction, self.step[0])
        elif self.interaction is not None:
            response = self.reply(journey.resume_url(self.interaction.id))
        elif isinstance(self.landing, Response):
            response = self.landing
        else:
            response = self.reply(self.door.second_step_url(self.request, self.who.user, list(session.amr),
                                                            self.landing)
                                  or self.door.settings.issuer + local_path(self.landing))
        self.door.set_cookie(response, self.cookie, persistent=bool(self.who.remember))
        return response


class Door:
    def __init__(self, journey: Journey, *, db: Database, sessions: SessionService, audit: Audit, mfa: MfaService,
                 settings: Settings):
        self.journey = journey
        self.db = db
        self.sessions = sessions
        self.audit = audit
        self.mfa = mfa
        self.settings = settings

    def finish_login(self, request: Request, who: Authenticated, *, interaction: Interaction | None,
                     req: AuthorizationRequest | None = None, landing: str | Response = "",
                     answer_here: bool = False, reply: Callable[[str], Response] = redirect) -> Response:
        """Signs `who` in and answers with the next step. `interaction`/`req`: the parked request
        (journey.parked); `landing`: without one, where the user goes (a local path, after a
        second factor if one is due) or the page to show; `answer_here`: the caller's response
        may be the answer to the client itself (else the browser goes by the resume URL);
        `reply`: how a next address reaches the browser (a redirect, or JSON for a script).
        Blocking: run it in the thread pool."""
        login = self.begin(request, who, interaction=interaction, req=req, landing=landing,
                           answer_here=answer_here, reply=reply)
        with self.db.session() as s:
            login.write(s)
        return login.response()

    def begin(self, request: Request, who: Authenticated, *, interaction: Interaction | None,
              req: AuthorizationRequest | None = None, landing: str | Response = "", answer_here: bool = False,
              reply: Callable[[str], Response] = redirect) -> Login:
        """`finish_login` in halves (see Login); the reads that decide the next step happen here,
        outside the write."""
        journey = self.journey
        here = answer_here and interaction is not None and req is not None and "none" not in req.prompt \
            and request.cookies.get(journey.interaction_cookie) == interaction.id
        step = journey.next_prompt(request, req, interaction, who.user, list(who.amr)) if here else None
        found = journey.current(request)
        return Login(self, request, who, interaction, req, landing, reply, found[0] if found else None, step, here)

    def set_cookie(self, response: Response, value: str, *, persistent: bool = False) -> None:
        """The session cookie: the one place that sets it."""
        response.set_cookie(self.journey.session_cookie, value, httponly=True, secure=self.settings.secure_cookies,
                            samesite="lax", path="/", max_age=self.settings.session_ttl if persistent else None)

    def second_step_url(self, request: Request, user: User, amr: list[str], next_path: str) -> str | None:
        """For a sign-in without an application: the /mfa address when the global policy wants a
        second factor now (an enrolled user under "optional", everyone under "required"; a
        remembered device skips it), else None."""
        needed = mfa_requirement(policy=self.settings.mfa_policy, acr_values=[], session_amr=amr,
                                 enrolled=lambda: self.mfa.enrolled(user.id),
                                 remembered=lambda: self.mfa.is_remembered(
                                     request.cookies.get(self.journey.device_cookie), user.id))
        if needed is None:
            return None
        return self.settings.issuer + "/mfa?" + urlencode({"next": local_path(next_path)})

    def factor_passed(self, session: BrowserSession, user: User, amr: str) -> None:
        """A second factor passed in `session` (at /mfa, or by setting one up): its value joins
        the session's amr, and the count of wrong answers starts again. Blocking."""
        self.mfa.succeeded(user.id)
        self.sessions.add_factor(session.sid, amr)
