"""Commands: roles add|list|remove|default (which AWS role a user gets, credentials/roles.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..credentials.roles import RoleError
from . import context as ctx

roles_app = typer.Typer(help="Rules that choose the AWS role for temporary credentials (POST /credentials/aws).",
                        no_args_is_help=True)


@roles_app.command("add")
def roles_add(
    role_arn: Annotated[str, typer.Option(help="The IAM role: arn:aws:iam::<account>:role/<name>.")],
    claim: Annotated[str | None, typer.Option(help="An ID-token claim to test (groups included).")] = None,
    match: Annotated[str | None, typer.Option(help="The value the claim must equal (or, for a list, contain).")
                     ] = None,
    client: Annotated[list[str] | None, typer.Option(help="Only for this client (repeat; default: any).")] = None,
    priority: Annotated[int, typer.Option(help="Lower numbers are tried first; the first match wins.")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a rule: users whose CLAIM matches MATCH (every user without --claim) may assume ROLE_ARN."""
    try:
        rule = ctx.provider().role_rules.add(role_arn, claim=claim, match=match, clients=client or [],
                                             priority=priority)
    except RoleError as exc:
        ctx.fail(str(exc))
        return
    if as_json:
        ctx.console.print_json(json.dumps(rule.as_dict()))
    else:
        ctx.console.print(f"added role rule {rule.id}: {escape(rule.role_arn)}")


@roles_app.command("list")
def roles_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The rules in the order they are tried, and the default."""
    rules = ctx.provider().role_rules
    rows, default = rules.list(), rules.default()
    if as_json:
        ctx.console.print_json(json.dumps({"rules": [r.as_dict() for r in rows], "default": default}))
        return
    table = Table("id", "priority", "claim", "match", "clients", "role")
    for r in rows:
        table.add_row(str(r.id), str(r.priority), escape(r.claim or "(any user)"), escape(r.match or "-"),
                      escape(", ".join(r.clients) or "(any)"), escape(r.role_arn))
    ctx.console.print(table)
    ctx.console.print(f"default: {escape(default) if default else 'deny'}")


@roles_app.command("remove")
def roles_remove(rule_id: Annotated[int, typer.Argument(help="The rule's id (roles list).")]) -> None:
    """Remove a rule."""
    try:
        ctx.provider().role_rules.remove(rule_id)
    except RoleError as exc:
        ctx.fail(str(exc))
    ctx.console.print(f"removed role rule {rule_id}")


@roles_app.command("default")
def roles_default(
    role_arn: Annotated[str | None, typer.Argument(help="The role for users no rule matches.")] = None,
    deny: Annotated[bool, typer.Option("--deny", help="Users no rule matches get no credentials.")] = False,
) -> None:
    """Set the role for users no rule matches, or --deny them (the initial state)."""
    if (role_arn is None) == (not deny):
        ctx.fail("give either a role ARN or --deny")
    try:
        ctx.provider().role_rules.set_default(None if deny else role_arn)
    except RoleError as exc:
        ctx.fail(str(exc))
    ctx.console.print(f"default role: {escape(role_arn) if role_arn and not deny else 'deny'}")
