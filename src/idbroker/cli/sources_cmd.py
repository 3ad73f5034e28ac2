"""Commands: sources add|update|list|show|remove (lazy-migration sources, asked in order)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..migration.sources import InvalidSource, SourceNotFound
from . import context as ctx

sources_app = typer.Typer(help="Legacy user stores (cognito, webhook, ldap) asked, in order, when a sign-in or a "
                               "forgot-password names an address no local account has.", no_args_is_help=True)

Options = Annotated[list[str] | None, typer.Option("--option", help="KEY=VALUE of the kind's options; those the "
                                                   "kind calls secret are stored encrypted (repeat).")]
Opt = Annotated[str | None, typer.Option()]


def _options(values: list[str] | None, **named: str | None) -> dict[str, str]:
    return {**ctx.key_values(values, "--option"), **{k: v for k, v in named.items() if v is not None}}


def _source_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "position": row.position, "enabled": row.enabled,
            "options": row.options, "secrets": ctx.provider().migration_sources.secret_names(row)}


def _print(row: Any, as_json: bool) -> None:
    ctx.print_record(_source_dict(row), as_json)


@sources_app.command("add")
def sources_add(
    source_id: Annotated[str, typer.Option("--id", help="Our name for the source.")],
    kind: Annotated[str, typer.Option(help="cognito, webhook or ldap.")],
    option: Options = None,
    user_pool_id: Opt = None, client_id: Opt = None, client_secret: Opt = None, region: Opt = None,
    endpoint_url: Opt = None,
    url: Annotated[str | None, typer.Option(help="webhook: its https URL; ldap: ldaps:// or ldap:// URL.")] = None,
    secret: Annotated[str | None, typer.Option(help="webhook: the HMAC-SHA256 signing secret.")] = None,
    position: Annotated[int | None, typer.Option(help="1 is asked first; default: last.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a migration source."""
    options = _options(option, user_pool_id=user_pool_id, client_id=client_id, client_secret=client_secret,
                       region=region, endpoint_url=endpoint_url, url=url, secret=secret)
    try:
        row = ctx.provider().migration_sources.add(source_id, kind, options, position=position,
                                                   enabled=not disabled)
    except InvalidSource as exc:
        ctx.fail(str(exc))
    _print(row, as_json)


@sources_app.command("update")
def sources_update(
    source_id: Annotated[str, typer.Argument(help="The source to change.")],
    option: Annotated[list[str] | None, typer.Option("--option", help="KEY=VALUE, merged; KEY= removes it "
                                                     "(repeat).")] = None,
    client_secret: Opt = None, endpoint_url: Opt = None, url: Opt = None, secret: Opt = None,
    position: Annotated[int | None, typer.Option(help="Move it: 1 is asked first.")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change a source's options, position or state."""
    options = _options(option, client_secret=client_secret, endpoint_url=endpoint_url, url=url, secret=secret)
    try:
        row = ctx.provider().migration_sources.update(source_id, options, position=position, enabled=enabled)
    except InvalidSource as exc:
        ctx.fail(str(exc))
    except SourceNotFound:
        ctx.fail(f"no source {source_id!r}")
    _print(row, as_json)


@sources_app.command("list")
def sources_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the sources in the order they are asked."""
    rows = ctx.provider().migration_sources.list()
    if as_json:
        ctx.console.print_json(json.dumps([_source_dict(r) for r in rows]))
        return
    table = Table("position", "id", "kind", "enabled")
    for r in rows:
        table.add_row(str(r.position), escape(r.id), escape(r.kind), "yes" if r.enabled else "no")
    ctx.console.print(table)


@sources_app.command("show")
def sources_show(source_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one source (secret options by name only)."""
    row = ctx.provider().migration_sources.row(source_id)
    if row is None:
        ctx.fail(f"no source {source_id!r}")
    _print(row, as_json)


@sources_app.command("remove")
def sources_remove(source_id: str) -> None:
    """Delete a source (users already migrated keep their accounts)."""
    try:
        ctx.provider().migration_sources.remove(source_id)
    except SourceNotFound:
        ctx.fail(f"no source {source_id!r}")
    ctx.console.print(f"removed source {escape(source_id)}")
