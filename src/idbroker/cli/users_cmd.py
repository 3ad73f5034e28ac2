"""Commands: users add|list|show|set-password|disable|import|export."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..accounts.users import UserError
from ..phone import normalise_phone
from . import context as ctx

users_app = typer.Typer(help="Manage users of the built-in user pool.", no_args_is_help=True)


def _user_dict(u: Any) -> dict[str, Any]:
    return {"sub": u.sub, "email": u.email, "email_verified": u.email_verified, "given_name": u.given_name,
            "family_name": u.family_name, "phone_number": u.phone_number, "groups": u.groups,
            "disabled": u.disabled, "created_at": u.created_at.isoformat()}


Password = Annotated[str | None, typer.Option(help="The password (visible in the process list and shell history: "
                                            "prefer the prompt or --password-stdin).")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                             "standard input.")]
PASSWORD_WAYS = ("Without --password or --password-stdin, the password is asked for twice, hidden "
                 "(only in a terminal).")


def _password(given: str | None, from_stdin: bool) -> str:
    """The password from --password, from standard input, or typed twice at a hidden prompt."""
    if given is not None and from_stdin:
        ctx.fail("give either --password or --password-stdin, not both")
    if given is not None:
        return given
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            ctx.fail("--password-stdin: standard input has no password on its first line")
        return line
    if not sys.stdin.isatty():
        ctx.fail("no password given and no terminal to ask for one: use --password-stdin or --password")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add", help=f"Create a user in the built-in pool. {PASSWORD_WAYS}")
def users_add(email: Annotated[str, typer.Option()],
              password: Password = None, password_stdin: PasswordStdin = False,
              given_name: Annotated[str | None, typer.Option()] = None,
              family_name: Annotated[str | None, typer.Option()] = None,
              phone_number: Annotated[str | None, typer.Option(help="In international form: + country code and "
                                                               "number (E.164), e.g. +14155550100.")] = None,
              group: Annotated[list[str] | None, typer.Option(help="Group membership (repeat).")] = None,
              email_verified: Annotated[bool, typer.Option(help="Mark the address verified.")] = True,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    phone = normalise_phone(phone_number) if phone_number else None
    if phone_number and phone is None:
        ctx.fail(f"--phone-number {phone_number!r} is not an international number: "
                 "+ country code and number (E.164), e.g. +14155550100")
    secret = _password(password, password_stdin)
    try:
        user = ctx.provider().users.create(email, secret, email_verified=email_verified, given_name=given_name,
                                           family_name=family_name, phone_number=phone, groups=list(group or []))
    except UserError as exc:
        ctx.fail(str(exc))
    _print_user(user, as_json)


def _print_user(user: Any, as_json: bool) -> None:
    ctx.print_record(_user_dict(user), as_json)


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users."""
    users = ctx.provider().users.list()
    if as_json:
        ctx.console.print_json(json.dumps([_user_dict(u) for u in users]))
        return
    table = Table("email", "sub", "verified", "disabled")
    for u in users:
        table.add_row(escape(u.email), u.sub, "yes" if u.email_verified else "no", "yes" if u.disabled else "no")
    ctx.console.print(table)


@users_app.command("show")
def users_show(email: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one user."""
    user = ctx.provider().users.by_email(email)
    if user is None:
        ctx.fail(f"no user {email!r}")
    _print_user(user, as_json)


@users_app.command("set-password", help=f"Set a user's password. {PASSWORD_WAYS}")
def users_set_password(email: str, password: Password = None, password_stdin: PasswordStdin = False) -> None:
    secret = _password(password, password_stdin)
    try:
        ctx.provider().users.set_password(email, secret)
    except UserError as exc:
        ctx.fail(str(exc))
    ctx.console.print(f"password changed for {escape(email)}")


@users_app.command("disable")
def users_disable(email: str, enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False
                  ) -> None:
    """Disable a user (sign-in and existing tokens stop working) or re-enable one."""
    p = ctx.provider()
    try:
        user = p.users.set_disabled(email, not enable)
    except UserError as exc:
        ctx.fail(str(exc))
    if not enable:
        p.sessions.end_all_for_user(user.id)
    ctx.console.print(f"{'enabled' if enable else 'disabled'} {escape(email)}")


# -- keys -------------------------------------------------------------------------------------


# -- import / export (accounts/transfer.py) ---------------------------------------------------

ImportFormat = Annotated[str, typer.Option("--format", help="jsonl (idbroker's own, what export writes), "
                                           "cognito-csv, auth0, keycloak or firebase.")]


def _open_input(path: str) -> Any:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        ctx.fail(f"cannot read {path}: {exc.strerror}")


@users_app.command("import")
def users_import(
        file: Annotated[str, typer.Argument(help="The file to read, - for standard input.")],
        format_name: ImportFormat = "jsonl",
        on_conflict: Annotated[str, typer.Option(help="For an email that already has a user: skip the line "
                                                 "or update the user with it.")] = "skip",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every line and count; write nothing.")] = False,
        hash_key: Annotated[str | None, typer.Option(help="firebase: the project's base64 signer key.")] = None,
        salt_separator: Annotated[str | None, typer.Option(help="firebase: the base64 salt separator.")] = None,
        rounds: Annotated[int | None, typer.Option(help="firebase: the scrypt rounds.")] = None,
        mem_cost: Annotated[int | None, typer.Option(help="firebase: the scrypt memory cost.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False) -> None:
    """Import users from a file, password hashes kept as they are (replaced by argon2id at each
    user's first sign-in). Re-running the same file skips or updates, never duplicates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..accounts.transfer import FORMATS, FormatOptions, Importer, Rejected, reader_for

    if format_name not in FORMATS:
        ctx.fail(f"--format {format_name!r}: one of {', '.join(FORMATS)}")
    if on_conflict not in ("skip", "update"):
        ctx.fail(f"--on-conflict {on_conflict!r}: skip or update")
    firebase_options = (hash_key, salt_separator, rounds, mem_cost)
    if format_name == "firebase" and any(o is None for o in firebase_options):
        ctx.fail("--format firebase needs --hash-key, --salt-separator, --rounds and --mem-cost "
                 "(Firebase console: Authentication > Users > Password hash parameters)")
    if format_name != "firebase" and any(o is not None for o in firebase_options):
        ctx.fail("--hash-key, --salt-separator, --rounds and --mem-cost are for --format firebase")
    options = FormatOptions(hash_key=hash_key, salt_separator=salt_separator, rounds=rounds, mem_cost=mem_cost)
    stream = _open_input(file)
    provider = ctx.provider()
    importer = Importer(provider.db, on_conflict=on_conflict, dry_run=dry_run)
    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=ctx.err_console, disable=not ctx.err_console.is_terminal, transient=True) as bar:
        task = bar.add_task("import", total=None)
        try:
            summary = importer.run(reader_for(format_name, options).records(stream),
                                   progress=lambda n: bar.advance(task, n))
        except Rejected as exc:
            ctx.fail(f"{file}: {exc}")
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
    if as_json:
        ctx.console.print_json(json.dumps({**summary.as_dict(), "dry_run": dry_run}))
        return
    verb = "would be " if dry_run else ""
    ctx.console.print(f"{verb}created {summary.created}, {verb}updated {summary.updated}, "
                      f"skipped {summary.skipped}, rejected {summary.rejected}")
    for line, reason in summary.rejects[:100]:
        ctx.console.print(f"  line {line}: {escape(reason)}", soft_wrap=True)
    if summary.rejected > 100:
        ctx.console.print(f"  ... and {summary.rejected - 100} more (--json lists the first 1000)")


@users_app.command("export")
def users_export(
        file: Annotated[str, typer.Argument(help="The file to write, - for standard output.")],
        format_name: Annotated[str, typer.Option("--format", help="jsonl (the only one).")] = "jsonl") -> None:
    """Write every user, with groups, profile, custom attributes and password hash, one JSON object
    a line (the format `users import` reads). The file holds password hashes: keep it safe."""
    from ..accounts.transfer import export

    if format_name != "jsonl":
        ctx.fail(f"--format {format_name!r}: only jsonl")
    provider = ctx.provider()
    if file == "-":
        export(provider.db, sys.stdout)
        sys.stdout.flush()
        return
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        ctx.fail(f"cannot write {file}: {exc.strerror}")
    with open(fd, "w", encoding="utf-8", buffering=1024 * 1024) as out:
        count = export(provider.db, out)
    ctx.err_console.print(f"exported {count} users to {escape(file)}")
