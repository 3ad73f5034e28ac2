"""The ``idbroker`` command line (typer + rich; `serve` without them)."""

from __future__ import annotations

import sys
from typing import Any

from ..settings import CONFIG_OPTIONS, use_config_file


def serve_options(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """(the configuration file, serve's options) when `argv` is `[--config FILE] serve ...`."""
    config = None
    if argv[:1] and argv[0] in CONFIG_OPTIONS and len(argv) > 1:
        config, argv = argv[1], argv[2:]
    elif argv[:1] and argv[0].startswith("--config="):
        config, argv = argv[0].partition("=")[2], argv[1:]
    return (config, argv[1:]) if argv[:1] == ["serve"] else None


def main() -> None:
    """The ``idbroker`` command. ``idbroker serve`` is the server's own `main` (server.py), with
    neither this command line's libraries nor its other commands loaded; the others run the whole
    command line (cli/main.py)."""
    serve = serve_options(sys.argv[1:])
    if serve is not None:
        from ..server import main as serve_main

        use_config_file(serve[0])
        serve_main(serve[1])
        return
    from .main import main as run

    run()


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command line, for `from idbroker.cli import app`
        from .main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
