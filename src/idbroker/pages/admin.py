"""The admin pages under /admin: find a user, disable or enable them, sign them out everywhere,
reset their second factors, delete them; clients (rotate a secret, shown once); signing keys
(rotate); the audit trail. Server-rendered in the hosted pages' design, over the same domain
functions as the admin API and the CLI (accounts/administration.py, the client registry, the key
store): nothing here decides anything the API does not.

Who may enter (checked on every request, GET and POST):
- a signed-in user (else /login?next=here) in the ``admin_group`` group (else a 403 page);
- whose session passed a second factor (else /mfa?next=here; a user with no factor enrolled is
  told to set one up first), passed at most ``admin_step_up_max_age`` seconds ago (else
  /login?next=here: signing in again is the step-up).

Every action is a POST with the CSRF token (a missing or wrong one changes nothing), is audited
as ``admin.action`` with the admin's user id, the action and its target, and comes back with a
message. An admin cannot disable or delete themselves: the pages would lock them out.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import audit
from ..accounts import administration as admin
from ..clients.registry import ClientNotFound
from ..mfa.policy import has_second_factor
from ..store.db import aware
from ..store.models import BrowserSession, Client, User
from ..text import N_
from ..web.proxies import client_ip
from .account_security import when
from .hosted import HostedPages, field

log = logging.getLogger("idbroker.admin")

NOT_ADMIN = N_("This page is for administrators only.")
NO_SUCH_USER = N_("There is no such user.")
NO_SUCH_CLIENT = N_("There is no such client.")
NOT_YOURSELF = N_("You cannot disable or delete your own account here: you would lock yourself out.")
CONFIRM_WRONG = N_("Type the user's email address to confirm.")
BAD_CURSOR = N_("That page link is no longer valid. Start the search again.")
BAD_MOMENT = N_("Enter an age such as 1h or 7d, or a date such as 2026-01-31.")
NO_SECRET = N_("This client has no secret to rotate.")
NOTICES = {
    "disabled": N_("The user was disabled and signed out everywhere."),
    "enabled": N_("The user was enabled."),
    "signed_out": N_("The user was signed out everywhere."),
    "mfa_reset": N_("The user's two-step verification was reset."),
    "deleted": N_("The user was deleted."),
    "key_rotated": N_("A new signing key was created."),
}
PAGE_SIZE = 25


def _text(query: Any, name: str) -> str:
    """A search field: at most 320 characters, without NUL (which PostgreSQL text cannot hold)."""
    return str(query.get(name, ""))[:320].replace("\x00", "").strip()


class AdminViews(HostedPages):
    def routes(self) -> list[Route]:
        return [
            Route("/admin", self.home, methods=["GET"]),
            Route("/admin/users", self.users, methods=["GET"]),
            Route("/admin/users/{sub}", self.user, methods=["GET"]),
            Route("/admin/users/{sub}/disable", self.disable, methods=["POST"]),
            Route("/admin/users/{sub}/enable", self.enable, methods=["POST"]),
            Route("/admin/users/{sub}/signout", self.sign_out, methods=["POST"]),
            Route("/admin/users/{sub}/reset-mfa", self.reset_mfa, methods=["POST"]),
            Route("/admin/users/{sub}/delete", self.delete_form, methods=["GET"]),
            Route("/admin/users/{sub}/delete", self.delete, methods=["POST"]),
            Route("/admin/clients", self.clients, methods=["GET"]),
            Route("/admin/clients/{client_id}", self.client, methods=["GET"]),
            Route("/admin/clients/{client_id}/secret", self.rotate_secret, methods=["POST"]),
            Route("/admin/keys", self.keys, methods=["GET"]),
            Route("/admin/keys/rotate", self.rotate_key, methods=["POST"]),
            Route("/admin/audit", self.audit_trail, methods=["GET"]),
        ]

    # -- the gate ---------------------------------------------------------------------------------
    def _here(self, request: Request) -> str:
        if request.method != "GET":
            return "/admin"
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")

    async def _admin(self, request: Request) -> tuple[BrowserSession, User] | Response:
        found = self.signed_in(request)
        here = self._here(request)
        if found is None:
            return self.redirect("/login?" + urlencode({"next": here}))
        session, user = found
        if self.settings.admin_group not in (user.groups or []):
            return self.journey.error_page(request, NOT_ADMIN, 403)
        if not has_second_factor(list(session.amr)):
            if not await run_in_threadpool(self.provider.mfa.enrolled, user.id):
                return self.page(request, "admin/enrol_first.html", 403, user=user)
            return self.redirect("/mfa?" + urlencode({"next": here}))
        max_age = timedelta(seconds=self.settings.admin_step_up_max_age)
        if aware(session.factor_at or session.auth_time) < datetime.now(UTC) - max_age:
            return self.redirect("/login?" + urlencode({"next": here}))
        return found

    async def _guarded(self, request: Request) -> tuple[Any, User] | Response:
        """The form and admin of a POST, or the answer when not allowed or the CSRF token is wrong."""
        form = await self.form(request)
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        if not self.csrf.valid(request, field(form, "csrf_token", 256)):
            return self.form_expired(request)
        return form, allowed[1]

    def _record(self, request: Request, admin_user: User, action: str, target: str, **detail: Any) -> None:
        self.provider.audit.record(audit.ADMIN_ACTION, user_id=admin_user.id, ip=client_ip(request),
                                   user_agent=request.headers.get("user-agent"), action=action, target=target,
                                   **detail)

    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        done = request.query_params.get("done", "")
        context.setdefault("notice", [NOTICES[done]] if done in NOTICES else [])
        context.setdefault("error", None)
        return self.page(request, template, status, headers={"Cache-Control": "no-store"}, **context)

    def _done(self, path: str, what: str, deliveries: list[Any] | None = None) -> Response:
        response = self.redirect(path + "?" + urlencode({"done": what}))
        if deliveries:
            response.background = BackgroundTask(self.provider.signout.notify, deliveries)
        return response

    async def home(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        return self.redirect("/admin/users")

    # -- users --------------------------------------------------------------------------------------
    async def users(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        q = request.query_params
        search = {name: _text(q, name) for name in ("email", "name", "group", "status")}
        if search["status"] not in admin.STATUSES:
            search["status"] = ""
        error, page = None, admin.Page([], None)
        try:
            page = await run_in_threadpool(admin.search_users, self.provider.db, email=search["email"] or None,
                                           name=search["name"] or None, group=search["group"] or None,
                                           status=search["status"] or None, cursor=q.get("cursor") or None,
                                           limit=PAGE_SIZE)
        except admin.BadCursor:
            error = BAD_CURSOR
        next_link = None
        if page.next_cursor:
            next_link = "/admin/users?" + urlencode({**{k: v for k, v in search.items() if v},
                                                     "cursor": page.next_cursor})
        return self._page(request, "admin/users.html", 400 if error else 200, nav="users", user=allowed[1],
                          search=search, users=page.items, next_link=next_link, error=error,
                          first_link="/admin/users?" + urlencode({k: v for k, v in search.items() if v})
                          if q.get("cursor") else None)

    async def _target(self, request: Request) -> User | None:
        return await run_in_threadpool(admin.find_user, self.provider.db, str(request.path_params["sub"]))

    async def _user_page(self, request: Request, admin_user: User, target: User, status: int = 200,
                         error: str | None = None) -> Response:
        lang = self.language(request)

        def read() -> tuple[list[Any], int, list[Any]]:
            return (self.provider.accounts.live_sessions(target.id), len(self.provider.mfa.factors(target.id)),
                    admin.linked_identities(self.provider.db, target.id))

        sessions, factors, links = await run_in_threadpool(read)
        return self._page(request, "admin/user.html", status, nav="users", user=admin_user, target=target,
                          sessions=[{"row": s, "signed_in": when(s.auth_time, lang)} for s in sessions],
                          factors=factors, links=links, error=error, is_self=target.id == admin_user.id)

    async def user(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        target = await self._target(request)
        if target is None:
            return self.journey.error_page(request, NO_SUCH_USER, 404)
        return await self._user_page(request, allowed[1], target)

    async def _action(self, request: Request) -> tuple[Any, User, User] | Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        target = await self._target(request)
        if target is None:
            return self.journey.error_page(request, NO_SUCH_USER, 404)
        return guarded[0], guarded[1], target

    def _user_path(self, target: User) -> str:
        return f"/admin/users/{target.sub}"

    async def _set_disabled(self, request: Request, disabled: bool) -> Response:
        acted = await self._action(request)
        if isinstance(acted, Response):
            return acted
        _, me, target = acted
        if disabled and target.id == me.id:
            return await self._user_page(request, me, target, 400, NOT_YOURSELF)
        _, deliveries = await run_in_threadpool(admin.set_disabled, self.provider.db, self.provider.accounts,
                                                target, disabled)
        await run_in_threadpool(self._record, request, me, "disable" if disabled else "enable", target.sub)
        return self._done(self._user_path(target), "disabled" if disabled else "enabled", deliveries)

    async def disable(self, request: Request) -> Response:
        return await self._set_disabled(request, True)

    async def enable(self, request: Request) -> Response:
        return await self._set_disabled(request, False)

    async def sign_out(self, request: Request) -> Response:
        acted = await self._action(request)
        if isinstance(acted, Response):
            return acted
        _, me, target = acted
        deliveries = await run_in_threadpool(admin.sign_out_everywhere, self.provider.accounts, target)
        await run_in_threadpool(self._record, request, me, "signout", target.sub)
        if target.id == me.id:  # their own session ended too
            response = self.redirect("/login")
            response.background = BackgroundTask(self.provider.signout.notify, deliveries)
            return response
        return self._done(self._user_path(target), "signed_out", deliveries)

    async def reset_mfa(self, request: Request) -> Response:
        acted = await self._action(request)
        if isinstance(acted, Response):
            return acted
        _, me, target = acted
        removed = await run_in_threadpool(admin.reset_mfa, self.provider.db, target.id)
        await run_in_threadpool(self._record, request, me, "reset_mfa", target.sub, factors_removed=removed)
        return self._done(self._user_path(target), "mfa_reset")

    async def delete_form(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        target = await self._target(request)
        if target is None:
            return self.journey.error_page(request, NO_SUCH_USER, 404)
        if target.id == allowed[1].id:
            return await self._user_page(request, allowed[1], target, 400, NOT_YOURSELF)
        return self._page(request, "admin/delete.html", nav="users", user=allowed[1], target=target)

    async def delete(self, request: Request) -> Response:
        acted = await self._action(request)
        if isinstance(acted, Response):
            return acted
        form, me, target = acted
        if target.id == me.id:
            return await self._user_page(request, me, target, 400, NOT_YOURSELF)
        if field(form, "confirm", 400).strip().lower() != (target.email or "").lower():
            return self._page(request, "admin/delete.html", 400, nav="users", user=me, target=target,
                              error=CONFIRM_WRONG)
        deliveries = await run_in_threadpool(self.provider.accounts.delete_account, target)
        await run_in_threadpool(self._record, request, me, "delete", target.sub, email=target.email)
        log.info("user %s deleted on the admin pages by %s", target.sub, me.sub)
        return self._done("/admin/users", "deleted", deliveries)

    # -- clients ------------------------------------------------------------------------------------
    async def clients(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        rows = await run_in_threadpool(self.provider.clients.list)
        return self._page(request, "admin/clients.html", nav="clients", user=allowed[1],
                          clients=sorted(rows, key=lambda c: c.client_id))

    async def _client(self, client_id: str) -> Client | None:
        if "\x00" in client_id or len(client_id) > 255:
            return None

        def read() -> Client | None:
            with self.provider.db.session(write=False) as s:
                return s.get(Client, client_id)

        return await run_in_threadpool(read)

    async def client(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        row = await self._client(str(request.path_params["client_id"]))
        if row is None:
            return self.journey.error_page(request, NO_SUCH_CLIENT, 404)
        return self._page(request, "admin/client.html", nav="clients", user=allowed[1], client_row=row,
                          secret=None)

    async def rotate_secret(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        _, me = guarded
        row = await self._client(str(request.path_params["client_id"]))
        if row is None:
            return self.journey.error_page(request, NO_SUCH_CLIENT, 404)
        if not row.secret_hash:
            return self._page(request, "admin/client.html", 409, nav="clients", user=me, client_row=row,
                              secret=None, error=NO_SECRET)
        try:
            row, secret = await run_in_threadpool(self.provider.clients.update, row.client_id, {}, new_secret=True)
        except ClientNotFound:
            return self.journey.error_page(request, NO_SUCH_CLIENT, 404)
        await run_in_threadpool(self._record, request, me, "rotate_secret", row.client_id)
        # Shown once, on this answer only: never stored in a page that could be fetched again.
        return self._page(request, "admin/client.html", nav="clients", user=me, client_row=row, secret=secret)

    # -- signing keys -------------------------------------------------------------------------------
    async def keys(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        lang = self.language(request)
        rows = await run_in_threadpool(self.provider.keys.list)
        keys = [{"kid": k.kid, "alg": k.alg, "state": state, "activate_at": when(k.activate_at, lang),
                 "retire_after": when(k.retire_after, lang)} for k, state in rows]
        return self._page(request, "admin/keys.html", nav="keys", user=allowed[1], keys=keys)

    async def rotate_key(self, request: Request) -> Response:
        guarded = await self._guarded(request)
        if isinstance(guarded, Response):
            return guarded
        form, me = guarded
        alg = field(form, "alg", 8)
        view = await run_in_threadpool(self.provider.keys.rotate, alg if alg in ("ES256", "RS256") else None)
        await run_in_threadpool(self._record, request, me, "rotate_key", view.kid, alg=view.alg)
        return self._done("/admin/keys", "key_rotated")

    # -- the audit trail ----------------------------------------------------------------------------
    async def audit_trail(self, request: Request) -> Response:
        allowed = await self._admin(request)
        if isinstance(allowed, Response):
            return allowed
        q = request.query_params
        search = {name: _text(q, name) for name in ("user", "kind", "since")}
        error, since, events, next_cursor = None, None, [], None
        if search["since"]:
            try:
                since = admin.parse_moment(search["since"])
            except (ValueError, OverflowError):  # "99999999999w" is further back than dates go
                error = BAD_MOMENT
        user_id: int | None = None
        missing_user = False
        if search["user"] and error is None:
            found = await run_in_threadpool(admin.find_user, self.provider.db, search["user"])
            missing_user = found is None
            user_id = found.id if found else None
        if error is None and not missing_user:
            try:
                page = await run_in_threadpool(admin.search_events, self.provider.db, user_id=user_id,
                                               kind=search["kind"][:64] or None, since=since,
                                               cursor=q.get("cursor") or None, limit=PAGE_SIZE)
                events, next_cursor = page.items, page.next_cursor
            except admin.BadCursor:
                error = BAD_CURSOR
        emails = await run_in_threadpool(admin.emails_of, self.provider.db,
                                         {e.user_id for e in events if e.user_id is not None}) if events else {}
        lang = self.language(request)
        shown = [{"kind": e.kind, "who": emails.get(e.user_id, ""), "ip": e.ip or "", "when": when(e.created_at, lang),
                  "detail": ", ".join(f"{k}={v}" for k, v in sorted((e.detail or {}).items()))} for e in events]
        filters = {k: v for k, v in search.items() if v}
        next_link = "/admin/audit?" + urlencode({**filters, "cursor": next_cursor}) if next_cursor else None
        return self._page(request, "admin/audit.html", 400 if error else 200, nav="audit", user=allowed[1],
                          search=search, events=shown, next_link=next_link, error=error,
                          first_link="/admin/audit?" + urlencode(filters) if q.get("cursor") else None)
