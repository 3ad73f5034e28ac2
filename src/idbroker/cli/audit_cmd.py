"""Commands: audit list - the audit trail, filtered as GET /admin/api/v1/audit-events filters it
(accounts/administration.py search_events)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..accounts import administration as admin
from ..store.db import aware
from . import context as ctx

audit_app = typer.Typer(help="Read the audit trail.", no_args_is_help=True)


@audit_app.command("list")
def audit_list(user: Annotated[str | None, typer.Option(help="The user's email address.")] = None,
               kind: Annotated[str | None, typer.Option(help="An event kind, e.g. login.failed.")] = None,
               since: Annotated[str | None, typer.Option(help="An age (15m, 1h, 7d) or ISO 8601 time.")] = None,
               until: Annotated[str | None, typer.Option(help="An age or ISO 8601 time.")] = None,
               limit: Annotated[int, typer.Option(help="At most this many events (1-500).")] = admin.DEFAULT_LIMIT,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Audit events, newest first."""
    if not 1 <= limit <= admin.MAX_LIMIT:
        ctx.fail(f"--limit must be from 1 to {admin.MAX_LIMIT}")
    moments = {}
    for name, value in (("since", since), ("until", until)):
        if value:
            try:
                moments[name] = admin.parse_moment(value)
            except ValueError as exc:
                ctx.fail(f"--{name}: {exc}")
    p = ctx.provider()
    user_id, emails = None, {}
    if user:
        found = admin.find_user(p.db, user)
        if found is None:
            ctx.fail(f"no user {user!r}")
        user_id, emails = found.id, {found.id: found.email}
    page = admin.search_events(p.db, user_id=user_id, kind=kind, limit=limit, **moments)
    others = {e.user_id for e in page.items if e.user_id is not None} - set(emails)
    if others:
        emails |= admin.emails_of(p.db, others)
    rows = [{"id": e.id, "time": aware(e.created_at).isoformat(), "kind": e.kind,
             "user": emails.get(e.user_id, e.user_id), "ip": e.ip, "detail": e.detail} for e in page.items]
    if as_json:
        ctx.console.print_json(json.dumps(rows, default=str))
        return
    table = Table("time", "kind", "user", "ip", "detail")
    for r in rows:
        table.add_row(r["time"], escape(r["kind"]), escape(str(r["user"] or "")), escape(r["ip"] or ""),
                      escape(json.dumps(r["detail"]) if r["detail"] else ""))
    ctx.console.print(table)
