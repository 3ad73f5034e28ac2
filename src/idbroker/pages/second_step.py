"""The second step of signing in: /mfa (use a factor or a recovery code) and /mfa/enrol (set one
up, during sign-in when the policy requires it or from the account's security page).

The journey parks an authorization request at ``/mfa?interaction=ID`` when the policy asks for a
second factor (mfa/policy.py); a direct sign-in (no application) comes here with ``next``, and so
does the security page when the session has not passed a second factor yet (step-up). Passing a
factor adds its RFC 8176 value and "mfa" to the session's amr (acr becomes urn:idbroker:acr:mfa),
then the browser goes back to the authorization request or to ``next``.

Every POST carries the CSRF token; wrong answers count per user (MfaService.failed) and lock
verification for a while after MAX_FAILURES.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import audit
from ..flow.journey import EXPIRED
from ..mfa.base import RECOVERY, RECOVERY_AMR, Attempt, FactorError
from ..mfa.factors import FACTORS
from ..mfa.policy import effective_policy, has_second_factor
from ..mfa.policy import requirement as mfa_requirement
from ..text import N_
from ..web.metrics import mfa_verified
from ..web.navigation import local_path
from ..web.proxies import client_ip
from .hosted import FORM_EXPIRED
from .lifecycle_pages import LifecyclePages, Problem, text_field

if TYPE_CHECKING:
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..store.models import BrowserSession, Interaction, MfaFactor, User

log = logging.getLogger("idbroker.mfa")

CODE_WRONG = N_("That code is not right. Try again.")
RECOVERY_WRONG = N_("That recovery code is not right or was already used.")
LOCKED = N_("Too many wrong codes. Please try again in %(seconds)d seconds.")
CODE_SENT = N_("We sent a code to %(to)s.")
NAME_TOO_LONG = N_("The name can be at most 64 characters.")
DEFAULT_NEXT = "/account/security"


@dataclass
class Visit:
    """Who is on the page and where they go afterwards."""

    session: BrowserSession
    user: User
    interaction: Interaction | None
    req: AuthorizationRequest | None
    next: str  # a local path, used when there is no interaction

    def hidden(self) -> dict[str, str]:
        return {"interaction": self.interaction.id if self.interaction else "",
                "next": "" if self.interaction else self.next}


def factor_label(factor: MfaFactor) -> str:
    cls = FACTORS.get(factor.kind)
    return getattr(cls, "label", factor.kind)


class MfaViews(LifecyclePages):
    def routes(self) -> list[Route]:
        return [
            Route("/mfa", self.show, methods=["GET"]),
            Route("/mfa", self.submit, methods=["POST"]),
            Route("/mfa/enrol", self.enrol, methods=["POST"]),
        ]

    # -- who and where --------------------------------------------------------------------------
    async def _visit(self, request: Request, interaction_value: str, next_value: str) -> Visit | Response:
        interaction, req = (None, None)
        if interaction_value:
            interaction, req = self.journey.parked(interaction_value, request)
            if interaction is None:
                return self.journey.error_page(request, EXPIRED, 400)
        found = self.journey.current(request)
        if found is None:
            if interaction is not None:
                return RedirectResponse(self.issuer + self.login_url(interaction), status_code=303)
            here = "/mfa?" + urlencode({"next": local_path(next_value, DEFAULT_NEXT)})
            return RedirectResponse(self.issuer + "/login?" + urlencode({"next": here}), status_code=303)
        return Visit(found[0], found[1], interaction, req, local_path(next_value, DEFAULT_NEXT))

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def target(self, visit: Visit) -> str:
        if visit.interaction is not None:
            return self.journey.resume_url(visit.interaction.id)
        return self.issuer + visit.next

    def _needs_enrolment(self, visit: Visit, enrolled: bool) -> bool:
        """Whether this visit must set up a first factor (sign-in under a policy that wants one)."""
        if enrolled:
            return False
        if visit.req is not None:
            policy = effective_policy(self.settings.mfa_policy, visit.req.client.mfa_policy)
            acr_values = visit.req.acr_values
        else:
            policy, acr_values = self.settings.mfa_policy, []
        needed = mfa_requirement(policy=policy, acr_values=acr_values, session_amr=list(visit.session.amr),
                                 enrolled=False, remembered=False)
        return needed is not None

    def attempt(self, request: Request, visit: Visit, factor: MfaFactor | None = None,
                form: Any = None) -> Attempt:
        lang = self.language(request, visit.req)
        mail_lang = self.pages.catalogs.negotiate(visit.user.locale, lang)
        translations = self.pages.catalogs.get(mail_lang)

        def render_text(template: str, **context: Any) -> str:
            return self.pages.render_text(template, mail_lang, issuer=self.settings.issuer, **context)

        fields = {k: v for k, v in (form or {}).items() if isinstance(v, str)}
        return Attempt(visit.user, factor, fields, mail_lang, render_text, translations.gettext,
                       ip=client_ip(request),
                       user_agent=request.headers.get("user-agent"))

    def record(self, request: Request, kind: str, user: User, **detail: Any) -> None:
        self.provider.audit.record(kind, user_id=user.id, ip=client_ip(request),
                                   user_agent=request.headers.get("user-agent"), **detail)

    # -- the page ----------------------------------------------------------------------------------
    async def show(self, request: Request) -> Response:
        q = request.query_params
        visit = await self._visit(request, q.get("interaction", ""), q.get("next", ""))
        if isinstance(visit, Response):
            return visit
        if has_second_factor(list(visit.session.amr)):
            return RedirectResponse(self.target(visit), status_code=303)
        factors = await run_in_threadpool(self.provider.mfa.factors, visit.user.id)
        if not factors:
            if self._needs_enrolment(visit, False):
                return self.choose_page(request, visit)
            return RedirectResponse(self.target(visit), status_code=303)
        return await self.verify_page(request, visit, factors, q.get("factor", ""), sent=q.get("sent") == "1")

    async def verify_page(self, request: Request, visit: Visit, factors: list[MfaFactor], chosen_id: str,
                          status: int = 200, error: Problem | None = None, sent: bool = False) -> Response:
        codes_left = await run_in_threadpool(self.provider.mfa.recovery_codes_left, visit.user.id)
        chosen = next((f for f in factors if f.id == chosen_id), None)
        if chosen is None and chosen_id != RECOVERY:
            # Authenticator apps first: nothing to wait for.
            chosen = next((f for f in factors if f.kind == "totp"), None) or factors[0]
        impl = self.provider.factors.get(chosen.kind) if chosen is not None else None
        extra: dict[str, Any] = {}
        describe = impl.describe(chosen) if impl is not None and chosen is not None else ""
        notice = Problem(CODE_SENT, {"to": describe}) if sent and impl is not None and impl.challenge else None
        if impl is not None and chosen is not None and getattr(impl, "begin_on_show", False):
            extra = await run_in_threadpool(impl.begin, self.attempt(request, visit, chosen))
        return self.page(request, "mfa/verify.html", status, req=visit.req, **visit.hidden(),
                         factors=[(f, factor_label(f), self.provider.factors.get(f.kind)) for f in factors],
                         chosen=chosen, chosen_kind=chosen.kind if chosen else RECOVERY,
                         describe=describe,
                         challenge=bool(impl and impl.challenge), codes_left=codes_left,
                         remember_days=self.provider.mfa.remember_days, error=error, notice=notice,
                         step_up=visit.interaction is None, **extra)

    def choose_page(self, request: Request, visit: Visit, status: int = 200, error: Problem | None = None,
                    phone: str = "") -> Response:
        return self.page(request, "mfa/choose.html", status, req=visit.req, **visit.hidden(),
                         kinds=list(FACTORS), error=error, phone=phone, user=visit.user)

    # -- answers -----------------------------------------------------------------------------------
    async def _posted(self, request: Request) -> tuple[Any, Visit] | Response:
        """The posted form and the visit it belongs to, or the page to answer with instead
        (an expired or foreign form, no sign-in)."""
        form = await self.read_form(request)
        if form is None:
            return self.journey.error_page(request, FORM_EXPIRED, 400)
        visit = await self._visit(request, text_field(form, "interaction"), text_field(form, "next"))
        if isinstance(visit, Response):
            return visit
        if not self.csrf.valid(request, text_field(form, "csrf_token")):
            return self.journey.error_page(request, FORM_EXPIRED, 400)
        return form, visit

    async def submit(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        form, visit = posted
        factors = await run_in_threadpool(self.provider.mfa.factors, visit.user.id)
        if not factors:
            return RedirectResponse(self.target(visit), status_code=303)
        chosen_id = text_field(form, "factor")[:64]
        chosen = next((f for f in factors if f.id == chosen_id), None)
        if chosen is None and chosen_id != RECOVERY:
            return await self.verify_page(request, visit, factors, "", 400, Problem(CODE_WRONG))
        if text_field(form, "action") == "send" and chosen is not None:
            return await self.send(request, visit, factors, chosen)
        locked = await run_in_threadpool(self.provider.mfa.locked_for, visit.user.id)
        if locked:
            return await self.verify_page(request, visit, factors, chosen_id, 429, Problem(LOCKED, {"seconds": locked}))
        if chosen is None:  # a recovery code
            ok = await run_in_threadpool(self.provider.mfa.use_recovery_code, visit.user.id,
                                         text_field(form, "code")[:64])
            amr, error = RECOVERY_AMR, RECOVERY_WRONG
            if ok:
                left = await run_in_threadpool(self.provider.mfa.recovery_codes_left, visit.user.id)
                self.record(request, audit.RECOVERY_CODE_USED, visit.user, remaining=left)
        else:
            impl = self.provider.factors.get(chosen.kind)
            if impl is None:
                return await self.verify_page(request, visit, factors, "", 400, Problem(CODE_WRONG))
            ok = await run_in_threadpool(impl.verify, self.attempt(request, visit, chosen, form))
            amr, error = impl.amr, getattr(impl, "wrong", CODE_WRONG)  # a kind may word it (passkeys)
        mfa_verified(chosen.kind if chosen is not None else RECOVERY, ok)
        if not ok:
            await run_in_threadpool(self.provider.mfa.failed, visit.user.id)
            return await self.verify_page(request, visit, factors, chosen_id, 400, Problem(error))
        return await self.passed(request, visit, amr, remember=text_field(form, "remember") == "yes")

    async def passed(self, request: Request, visit: Visit, amr: str, *, remember: bool = False,
                     target: str | None = None) -> Response:
        await run_in_threadpool(self.journey.door.factor_passed, visit.session, visit.user, amr)
        response = RedirectResponse(target or self.target(visit), status_code=303)
        if remember and self.provider.mfa.remember_days > 0:
            value = await run_in_threadpool(self.provider.mfa.remember, visit.user.id,
                                            request.headers.get("user-agent"))
            response.set_cookie(self.journey.device_cookie, value, max_age=self.provider.mfa.remember_days * 86400,
                                httponly=True, secure=self.settings.secure_cookies, samesite="lax", path="/")
        return response

    async def send(self, request: Request, visit: Visit, factors: list[MfaFactor], chosen: MfaFactor) -> Response:
        impl = self.provider.factors.get(chosen.kind)
        if impl is None or not impl.challenge:
            return await self.verify_page(request, visit, factors, chosen.id)
        try:
            await run_in_threadpool(impl.begin, self.attempt(request, visit, chosen))
        except FactorError as exc:
            status = 429 if "seconds" in exc.params else 503
            return await self.verify_page(request, visit, factors, chosen.id, status, Problem(exc.message, exc.params))
        query = {**{k: v for k, v in visit.hidden().items() if v}, "factor": chosen.id, "sent": "1"}
        return RedirectResponse(self.issuer + "/mfa?" + urlencode(query), status_code=303)

    # -- setting one up ----------------------------------------------------------------------------
    async def enrol(self, request: Request) -> Response:
        """action=start (kind, and phone for SMS) shows the kind's set-up page; action=confirm
        (factor, code, name) confirms it; action=resend sends a set-up code again."""
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        form, visit = posted
        enrolled = await run_in_threadpool(self.provider.mfa.enrolled, visit.user.id)
        if enrolled and not has_second_factor(list(visit.session.amr)):
            # Adding a factor needs the ones already there: step up first.
            query = urlencode({k: v for k, v in visit.hidden().items() if v})
            return RedirectResponse(self.issuer + "/mfa?" + query, status_code=303)
        action = text_field(form, "action")
        if action == "start":
            impl = self.provider.factors.get(text_field(form, "kind")[:16])
            if impl is None:
                return self.choose_page(request, visit, 400)
            try:
                factor, shown = await run_in_threadpool(impl.enrol, self.attempt(request, visit, None, form))
            except FactorError as exc:  # a wrong number, or no code sent (429: not now)
                return self.choose_page(request, visit, 429 if "seconds" in exc.params else 400,
                                        Problem(exc.message, exc.params), phone=text_field(form, "phone")[:40])
            return self.enrol_page(request, visit, factor, shown)
        factor = await run_in_threadpool(self.provider.mfa.factor, visit.user.id,
                                         text_field(form, "factor")[:64], pending=True)
        impl = self.provider.factors.get(factor.kind) if factor is not None else None
        if factor is None or impl is None:
            return self.journey.error_page(request, EXPIRED, 400)
        attempt = self.attempt(request, visit, factor, form)
        if action == "resend" and impl.challenge:
            try:
                shown = await run_in_threadpool(impl.begin, attempt)
            except FactorError as exc:
                _, shown = await run_in_threadpool(impl.enrol, attempt)
                return self.enrol_page(request, visit, factor, shown, 429, Problem(exc.message, exc.params))
            return self.enrol_page(request, visit, factor, shown, notice=Problem(CODE_SENT, {"to": shown["sent_to"]}))
        name = text_field(form, "name").strip()
        if len(name) > 64:
            _, shown = await run_in_threadpool(impl.enrol, attempt)
            return self.enrol_page(request, visit, factor, shown, 400, Problem(NAME_TOO_LONG),
                                   factor_name=name[:64])
        locked = await run_in_threadpool(self.provider.mfa.locked_for, visit.user.id)
        try:
            if locked:
                raise FactorError(LOCKED, seconds=locked)
            ok = await run_in_threadpool(impl.confirm, attempt)
        except FactorError as exc:
            if not locked:
                await run_in_threadpool(self.provider.mfa.failed, visit.user.id)
            _, shown = await run_in_threadpool(impl.enrol, attempt)
            return self.enrol_page(request, visit, factor, shown, 429 if locked else 400,
                                   Problem(exc.message, exc.params), factor_name=name)
        if not ok:  # confirmed meanwhile by another request
            return self.journey.error_page(request, EXPIRED, 400)
        if name:
            await run_in_threadpool(self.provider.mfa.rename, visit.user.id, factor.id, name)
        self.record(request, audit.MFA_ENROLLED, visit.user, method=factor.kind, factor=factor.id)
        codes: list[str] = []
        if await run_in_threadpool(self.provider.mfa.recovery_codes_left, visit.user.id) == 0:
            codes = await run_in_threadpool(self.provider.mfa.new_recovery_codes, visit.user.id)
        # Setting it up just proved possession: the session has passed a second factor.
        await run_in_threadpool(self.journey.door.factor_passed, visit.session, visit.user, impl.amr)
        return self.page(request, "mfa/enrolled.html", req=visit.req, codes=codes, label=impl.label,
                         continue_url=self.target(visit), in_sign_in=visit.interaction is not None)

    def enrol_page(self, request: Request, visit: Visit, factor: MfaFactor, shown: dict[str, Any],
                   status: int = 200, error: Problem | None = None, notice: Problem | None = None,
                   factor_name: str = "") -> Response:
        impl = self.provider.factors.get(factor.kind)
        return self.page(request, "mfa/enrol.html", status, req=visit.req, **visit.hidden(), factor=factor,
                         kind=factor.kind, label=impl.label if impl else factor.kind, error=error, notice=notice,
                         factor_name=factor_name, challenge=bool(impl and impl.challenge), **shown)

