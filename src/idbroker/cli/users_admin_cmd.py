"""Commands: users search|delete|signout|reset-mfa - what the admin API does to users
(endpoints/admin/), through the same functions (accounts/administration.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from ..accounts import administration as admin
from . import context as ctx
from .users_cmd import users_app


def _row(u: Any) -> dict[str, Any]:
    return {"sub": u.sub, "email": u.email, "email_verified": u.email_verified, "given_name": u.given_name,
            "family_name": u.family_name, "groups": u.groups, "disabled": u.disabled,
            "created_at": u.created_at.isoformat()}


def _user(email: str) -> Any:
    user = admin.find_user(ctx.provider().db, email)
    if user is None:
        ctx.fail(f"no user {email!r}")
    return user


def _tell(deliveries: list[Any]) -> None:
    """Back-channel logout tokens to the applications (OIDC Back-Channel Logout §2.5)."""
    if deliveries:
        anyio.run(ctx.provider().signout.notify, deliveries)


@users_app.command("search")
def users_search(email: Annotated[str | None, typer.Option(help="Part of the email address.")] = None,
                 name: Annotated[str | None, typer.Option(help="Part of a given, family, nick or user name.")] = None,
                 group: Annotated[str | None, typer.Option(help="A group the user is in.")] = None,
                 status: Annotated[str | None, typer.Option(help="active or disabled.")] = None,
                 limit: Annotated[int, typer.Option(help="At most this many users (1-500).")] = admin.DEFAULT_LIMIT,
                 as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Find users by email, name, group or status (as GET /admin/api/v1/users)."""
    if status not in (None, *admin.STATUSES):
        ctx.fail("--status must be active or disabled")
    if not 1 <= limit <= admin.MAX_LIMIT:
        ctx.fail(f"--limit must be from 1 to {admin.MAX_LIMIT}")
    page = admin.search_users(ctx.provider().db, email=email, name=name, group=group, status=status, limit=limit)
    if as_json:
        ctx.console.print_json(json.dumps([_row(u) for u in page.items]))
        return
    table = Table("email", "sub", "name", "groups", "disabled")
    for u in page.items:
        full = " ".join(p for p in (u.given_name, u.family_name) if p)
        table.add_row(escape(u.email), u.sub, escape(full), escape(", ".join(u.groups or [])),
                      "yes" if u.disabled else "no")
    ctx.console.print(table)
    if page.next_cursor:
        ctx.console.print(f"(more than {limit}: narrow the search or raise --limit)")


@users_app.command("delete")
def users_delete(email: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a user: signed out everywhere (applications told), then removed with every session,
    grant, consent and second factor."""
    user = _user(email)
    if not yes:
        if not typer.confirm(f"Delete {user.email} for good?", default=False):
            ctx.fail("not deleted")
    _tell(ctx.provider().accounts.delete_account(user))
    ctx.console.print(f"deleted {escape(user.email)}")


@users_app.command("signout")
def users_signout(email: str) -> None:
    """End every session of a user and revoke every grant (refresh and access tokens stop working)."""
    user = _user(email)
    p = ctx.provider()
    count = len(p.accounts.live_sessions(user.id))
    _tell(admin.sign_out_everywhere(p.accounts, user))
    ctx.console.print(f"signed out {escape(user.email)} everywhere ({count} session{'s' if count != 1 else ''} ended)")


@users_app.command("reset-mfa")
def users_reset_mfa(email: str) -> None:
    """Remove a user's second factors, recovery codes and remembered devices."""
    user = _user(email)
    removed = admin.reset_mfa(ctx.provider().db, user.id)
    ctx.console.print(f"removed {removed} second factor{'s' if removed != 1 else ''} of {escape(user.email)}")
