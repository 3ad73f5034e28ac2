"""Command: serve, and the ``--config`` option every command takes.

``idbroker serve`` runs with this module alone (cli/__init__.py): it checks the settings and the
port and replaces itself with the server (server.py), which prepares the store with the
application it loads anyway. The other commands' modules - the services, SQLAlchemy, Alembic - are
not imported for a start, so the first answer comes ~0.5 s sooner.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from . import context as ctx


def root(config: Annotated[str | None, typer.Option("--config", "-c", help="TOML configuration file "
                                                    "(default: $IDBROKER_CONFIG).")] = None) -> None:
    ctx.set_config(config)


def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int | None, typer.Option(help="TCP port (default: the port setting, 8000).")] = None,
          workers: Annotated[int, typer.Option(help="Worker processes (default: 1).")] = 1,
          access_log: Annotated[bool, typer.Option(help="Log every request.")] = False) -> None:
    """Apply migrations, make sure signing keys exist, and serve the broker with Granian."""
    from ..server import exec_server, port_problem
    from .first_run import local_issuer

    settings = ctx.settings()
    port = port or settings.port
    busy = port_problem(host, port)
    if busy:
        ctx.fail(busy)
    if ctx.uses_local_issuer():
        # No issuer configured: the local address is the issuer (development); `localhost` so that
        # passkeys work (browsers refuse an IP address as a WebAuthn RP id).
        os.environ["IDBROKER_ISSUER"] = local_issuer(host, port)
    # Share the cores among the workers' password hashing.
    os.environ.setdefault("IDBROKER_HASH_CONCURRENCY", str(max(1, (os.cpu_count() or 1) // max(1, workers))))
    exec_server(host, port, workers, access_log)


app = typer.Typer(help="idbroker: a self-hostable OpenID Connect identity broker.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.callback()(root)
app.command()(serve)


def main() -> None:
    """`idbroker serve …` (cli/__init__.py)."""
    ctx.run(app)
