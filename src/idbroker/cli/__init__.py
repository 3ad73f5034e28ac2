"""The ``idbroker`` command line (typer + rich)."""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    """The ``idbroker`` command. ``idbroker serve`` loads its own command alone (cli/serve_cmd.py),
    the others the whole command line (cli/main.py)."""
    if sys.argv[1:2] == ["serve"]:
        from .serve_cmd import main as run
    else:
        from .main import main as run
    run()


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command line, for `from idbroker.cli import app`
        from .main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
