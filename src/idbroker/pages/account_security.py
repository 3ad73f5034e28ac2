"""The account's security page, /account/security: second factors (list, add, rename, remove),
recovery codes (how many are left, a new set shown once) and remembered devices (revoke).

A user who has a factor must have passed one in this session to see or change any of it (the
page sends them through /mfa first). Under the global ``mfa_policy = "required"`` the last factor
cannot be removed while no unused recovery code is left: at least one factor or recovery path
stays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from babel.dates import format_datetime
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import audit
from ..accounts.sessions import describe_device
from ..mfa.factors import FACTORS
from ..mfa.policy import has_second_factor
from ..store.db import aware
from ..text import N_, SUPPORTED
from ..web.proxies import client_ip
from .account import done_redirect, keeps_apps, notices
from .hosted import HostedPages, field
from .lifecycle_pages import Problem

if TYPE_CHECKING:
    from ..store.models import BrowserSession, User

NOTICES = {
    "renamed": N_("The name was saved."),
    "removed": N_("The sign-in method was removed."),  # and the rest signed out (SIGNS_OUT)
    "device": N_("The device will be asked for a second step again."),
    "enrolled": N_("The sign-in method was added."),
}
LAST_FACTOR = N_("This is your last sign-in method and two-step verification is required: add another "
                 "method, or create recovery codes, before you remove it.")
NAME_INVALID = N_("Enter a name of at most 64 characters.")
PATH = "/account/security"
SIGNS_OUT = frozenset({"removed"})


def when(value: datetime | None, lang: str) -> dict[str, str] | None:
    if value is None:
        return None
    moment = aware(value).astimezone(UTC)
    try:
        shown = format_datetime(moment, format="medium", tzinfo=UTC, locale=SUPPORTED.get(lang, "en")) + " UTC"
    except (ValueError, LookupError):
        shown = moment.strftime("%Y-%m-%d %H:%M UTC")
    return {"text": shown, "iso": moment.isoformat()}


class SecurityViews(HostedPages):
    def routes(self) -> list[Route]:
        return [
            Route(PATH, self.show, methods=["GET"]),
            Route(PATH + "/rename", self.rename, methods=["POST"]),
            Route(PATH + "/remove", self.remove, methods=["POST"]),
            Route(PATH + "/recovery-codes", self.recovery_codes, methods=["POST"]),
            Route(PATH + "/devices/forget", self.forget_device, methods=["POST"]),
        ]

    async def _allowed(self, request: Request) -> tuple[BrowserSession, User] | Response:
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)
        session, user = found
        if not has_second_factor(list(session.amr)) and \
                await run_in_threadpool(self.provider.mfa.enrolled, user.id):
            return self.redirect("/mfa?" + urlencode({"next": PATH}))  # step-up
        return found

    async def _guarded(self, request: Request) -> tuple[Any, BrowserSession, User] | Response:
        form = await self.form(request)
        found = await self._allowed(request)
        if isinstance(found, Response):
            return found
        if not self.csrf.valid(request, field(form, "csrf_token", 256)):
            return self.form_expired(request)
        return form, found[0], found[1]

    def _record(self, request: Request, kind: str, user: User, **detail: Any) -> None:
        self.provider.audit.record(kind, user_id=user.id, ip=client_ip(request),
                                   user_agent=request.headers.get("user-agent"), **detail)

    # -- the page ---------------------------------------------------------------------------------
    async def show(self, request: Request) -> Response:
        found = await self._allowed(request)
        if isinstance(found, Response):
            return found
        return await self._render(request, found[1], notice=notices(request, NOTICES, SIGNS_OUT))

    async def _render(self, request: Request, user: User, status: int = 200, **context: Any) -> Response:
        mfa = self.provider.mfa
        factors = await run_in_threadpool(mfa.factors, user.id)
        devices = await run_in_threadpool(mfa.devices, user.id)
        codes_left = await run_in_threadpool(mfa.recovery_codes_left, user.id)
        lang = self.pages.language(request, user_locale=user.locale)
        rows = []
        for f in factors:
            impl = self.provider.factors.get(f.kind)
            rows.append({"id": f.id, "kind": f.kind, "name": f.name, "label": impl.label if impl else f.kind,
                         "detail": impl.describe(f) if impl else "", "added": when(f.created_at, lang),
                         "used": when(f.last_used_at, lang)})
        device_rows = []
        for d in devices:
            browser, system = describe_device(d.user_agent)
            device_rows.append({"id": d.id_hash, "browser": browser, "system": system,
                                "added": when(d.created_at, lang), "expires": when(d.expires_at, lang)})
        context.setdefault("errors", {})
        return self.page(request, "account/security.html", status, user=user, nav="security", factors=rows,
                         devices=device_rows, codes_left=codes_left, kinds=list(FACTORS),
                         policy=self.settings.mfa_policy, remember_days=mfa.remember_days, **context)

    def _done(self, what: str) -> Response:
        return self.redirect(PATH + "?" + urlencode({"done": what}))

    # -- factors ----------------------------------------------------------------------------------
    async def rename(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, _, user = guarded
        factor_id, name = field(form, "factor", 64), field(form, "name", 200).strip()
        if len(name) > 64:
            return await self._render(request, user, 400, errors={factor_id: Problem(NAME_INVALID)})
        await run_in_threadpool(self.provider.mfa.rename, user.id, factor_id, name)  # not theirs: no-op
        return self._done("renamed")

    async def remove(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, session, user = guarded
        factor_id = field(form, "factor", 64)
        mfa = self.provider.mfa
        factors = await run_in_threadpool(mfa.factors, user.id)
        target = next((f for f in factors if f.id == factor_id), None)
        if target is None:  # not theirs, or removed meanwhile: nothing changed
            return self.redirect(PATH)
        if self.settings.mfa_policy == "required" and len(factors) == 1 and \
                await run_in_threadpool(mfa.recovery_codes_left, user.id) == 0:
            return await self._render(request, user, 409, errors={factor_id: Problem(LAST_FACTOR)})
        removed = await run_in_threadpool(mfa.remove, user.id, factor_id)
        if removed is None:
            return self.redirect(PATH)
        self._record(request, audit.MFA_REMOVED, user, method=removed.kind, factor=removed.id)
        # One way in fewer (turning two-step verification off, a passkey gone): whatever signed in
        # with it elsewhere is signed out, as after a password change.
        keep_apps = keeps_apps(form)
        deliveries = await run_in_threadpool(self.provider.accounts.sign_out_others, user.id, user.sub,
                                             session.sid, keep_apps=keep_apps)
        return done_redirect(self, PATH, "removed", deliveries, kept_apps=keep_apps)

    # -- recovery codes ---------------------------------------------------------------------------
    async def recovery_codes(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        _, _, user = guarded
        codes = await run_in_threadpool(self.provider.mfa.new_recovery_codes, user.id)
        self._record(request, audit.RECOVERY_CODES_REGENERATED, user)
        return self.page(request, "account/recovery_codes.html", user=user, nav="security", codes=codes)

    # -- devices ------------------------------------------------------------------------------------
    async def forget_device(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, _, user = guarded
        await run_in_threadpool(self.provider.mfa.forget_device, user.id, field(form, "device", 64))
        return self._done("device")
