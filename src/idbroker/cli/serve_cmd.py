"""Command: serve, and the ``--config`` option every command takes.

``idbroker [--config FILE] serve`` is the server's own `main` (server.py), which cli/__init__.py runs
without this module or the rest of the command line. Here, for the command line run another way
(typer's test runner, `from idbroker.cli import app`), the command hands its options as they are to
that `main`, which checks them and has their help.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..settings import CONFIG_OPTIONS
from . import context as ctx


def root(config: Annotated[str | None, typer.Option(*CONFIG_OPTIONS, help="TOML configuration file "
                                                    "(default: $IDBROKER_CONFIG).")] = None) -> None:
    ctx.set_config(config)


PASSED_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def serve(options: typer.Context) -> None:
    """Apply migrations, make sure signing keys exist, and serve the broker with Granian."""
    from ..server import main  # its options, and their help, are the server's own

    main(options.args)
