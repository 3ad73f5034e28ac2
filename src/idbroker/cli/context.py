"""Settings and services for CLI commands, with configuration problems shown, not raised."""

from __future__ import annotations

import os
from functools import lru_cache

import typer
from rich.console import Console
from rich.markup import escape

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
    """Services on a migrated store (every command may be the first one run)."""
    p = Provider(settings())
    upgrade(p.db.engine)
    return p


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
