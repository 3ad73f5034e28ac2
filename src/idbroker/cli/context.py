"""Settings and services for CLI commands, with configuration problems shown, not raised."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from ..provider import Provider
from ..settings import Settings, SettingsError, load_settings
from ..store.migrate import upgrade

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


def data_dir_problem(loaded: Settings) -> str | None:
    """Why `data_dir` cannot hold the broker's files (created when missing), or None. Checked
    only when it is used: for the SQLite database or the generated secret key."""
    if loaded.database_url and loaded.secret_key:
        return None
    path = Path(loaded.data_dir).resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"data_dir {path} is a file, not a directory"
    except OSError as exc:
        return f"data_dir {path} cannot be created: {exc.strerror or exc}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"data_dir {path} is not writable by this user"
    return None


def database_problem(exc: DBAPIError, url: URL | str | None = None) -> str:
    """One line for a database that cannot be used: the driver's first line (connection
    refused, authentication failed, no such database), without the password."""
    shown = url.render_as_string(hide_password=True) if isinstance(url, URL) else (url or "")
    lines = [line.strip() for line in str(exc.orig or exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    return f"cannot use the database{' ' + shown if shown else ''}: {reason}"


def uses_local_issuer() -> bool:
    """No issuer is configured: the broker is `http://localhost:PORT` (see first_run.py)."""
    settings()
    return bool(STATE.get("local_issuer"))


def set_config(path: str | None) -> None:
    STATE["config"] = path
    if path:
        os.environ["IDBROKER_CONFIG"] = os.path.abspath(path)


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
