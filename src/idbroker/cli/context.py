"""Settings and services for CLI commands, with configuration problems shown, not raised."""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..server import data_dir_problem, database_problem
from ..settings import Settings, SettingsError, load_settings, use_config_file

if TYPE_CHECKING:
    from ..provider import Provider

console = Console()
err_console = Console(stderr=True)

STATE: dict[str, str | None] = {"config": None}


def settings() -> Settings:
    """The settings; without a configured issuer, the one `idbroker serve` picks (first_run.py)."""
    from .first_run import issuer_configured, local_issuer

    try:
        loaded = load_settings(STATE["config"])
        STATE["local_issuer"] = None if issuer_configured(loaded) else "yes"
        if issuer_configured(loaded):
            return loaded
        return load_settings(STATE["config"], issuer=local_issuer("127.0.0.1", loaded.port))
    except SettingsError as exc:
        err_console.print("[bold red]Invalid configuration:[/]")
        for problem in exc.problems:
            err_console.print(f"  • {escape(problem)}", soft_wrap=True)
        raise typer.Exit(2) from None


@lru_cache(maxsize=1)
def provider() -> Provider:
    """Services on a migrated store (every command may be the first one run). A data_dir that
    cannot be used or a database that cannot be reached is one line and exit status 1."""
    from sqlalchemy.exc import OperationalError

    from ..provider import Provider
    from ..store.migrate import upgrade

    loaded = settings()
    problem = data_dir_problem(loaded)
    if problem:
        fail(problem)
    p = Provider(loaded)
    try:
        upgrade(p.db.engine)
    except OperationalError as exc:
        fail(database_problem(exc, p.db.engine.url))
    return p


def uses_local_issuer() -> bool:
    """No issuer is configured: the broker is `http://localhost:PORT` (see first_run.py)."""
    settings()
    return bool(STATE.get("local_issuer"))


def set_config(path: str | None) -> None:
    STATE["config"] = path
    use_config_file(path)


def run(app: typer.Typer) -> None:
    """Runs a command line. A mistake on it (a missing option, a bad value) is one line on stderr
    and exit status 2, an interrupted prompt exit status 1."""
    from typer._click.exceptions import NoArgsIsHelpError  # typer's own copy of click (typer 0.29)

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a command group alone: its help, as always
        exc.show()
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # the command line's usage errors
        where = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
        error_line(exc.format_message() + where)
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        error_line("aborted")
        sys.exit(1)
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        error_line(database_problem(exc))  # a database that went away (provider() checks it first)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def error_line(message: str) -> None:
    """One line on stderr (never wrapped; `message` is text, not markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    error_line(message)
    raise typer.Exit(code)


def key_values(values: list[str] | None, flag: str) -> dict[str, str]:
    """KEY=VALUE items of a repeated option (`--option`, `--secret`, `--claim`); one line and exit 1
    for an item without `=`."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def print_record(data: dict[str, Any], as_json: bool) -> None:
    """One record (a client, a provider, a source, a user): JSON, or a two-column table in which
    lists are comma-separated and maps KEY=VALUE."""
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        shown = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else \
            ", ".join(value) if isinstance(value, list) else str(value)
        table.add_row(f"[bold]{key}[/]", escape(shown))
    console.print(table)
