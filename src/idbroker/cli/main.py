"""The `idbroker` command: serve, keys, db here; each other group in a module of its own
(clients_cmd.py, idp_cmd.py, users_cmd.py, ...: named `*_cmd`, never like a package), added below with one line."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from ..keys.keystore import ENC_ALGS
from . import context as ctx
from . import users_admin_cmd  # noqa: F401 - users search|delete|signout|reset-mfa on users_app
from .audit_cmd import audit_app
from .clients_cmd import clients_app
from .credentials_cmd import credentials_app
from .demo_cmd import demo
from .idp_cmd import idp_app
from .roles_cmd import roles_app
from .serve_cmd import PASSED_THROUGH, root, serve
from .sources_cmd import sources_app
from .users_cmd import users_app

app = typer.Typer(help="idbroker: a self-hostable OpenID Connect identity broker.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
keys_app = typer.Typer(help="List and rotate token signing keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations and housekeeping.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(idp_app, name="idp")
app.add_typer(sources_app, name="sources")
app.add_typer(roles_app, name="roles")
app.add_typer(credentials_app, name="credentials")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.command()(demo)


app.callback()(root)
app.command(context_settings=PASSED_THROUGH)(serve)


# -- clients ------------------------------------------------------------------------------------
@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Signing keys and their state (next, active, retired)."""
    p = ctx.provider()
    p.keys.ensure()
    rows = p.keys.list()
    if as_json:
        ctx.console.print_json(json.dumps([{"kid": k.kid, "alg": k.alg, "state": st,
                                             "activate_at": k.activate_at.isoformat(),
                                             "retire_after": k.retire_after.isoformat() if k.retire_after else None}
                                            for k, st in rows]))
        return
    table = Table("kid", "alg", "state", "signs from", "published until")
    for k, st in rows:
        table.add_row(k.kid, k.alg, st, k.activate_at.isoformat(),
                      k.retire_after.isoformat() if k.retire_after else "-")
    ctx.console.print(table)


@keys_app.command("rotate")
def keys_rotate(alg: Annotated[str | None, typer.Option(help="ES256 or RS256 (default: signing_alg), or "
                                                             "RSA-OAEP-256 for the request-object encryption key.")
                                                             ] = None,
                now: Annotated[bool, typer.Option("--now", help="Sign with it at once (key compromise).")] = False
                ) -> None:
    """Create a new key: published in JWKS at once, signing after key_activation_delay."""
    p = ctx.provider()
    if alg not in (None, "ES256", "RS256", *ENC_ALGS):
        ctx.fail(f"alg must be ES256 or RS256 (signing), or {' or '.join(ENC_ALGS)} (encryption)")
    p.keys.ensure()
    key = p.keys.rotate(alg, immediately=now)
    ctx.console.print(f"new {key.alg} key {key.kid}: published now, signs from {key.activate_at.isoformat()}")


# -- db ----------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from ..store.migrate import current_revision

    p = ctx.provider()  # upgrades
    ctx.console.print(f"database at revision {current_revision(p.db.engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision."""
    from ..store.db import Database
    from ..store.migrate import current_revision

    db = Database(ctx.settings().resolved_database_url)
    ctx.console.print(current_revision(db.engine) or "empty database")


@db_app.command("purge")
def db_purge() -> None:
    """Delete expired codes, tokens, grants, sessions and interactions, forgotten throttle rows and
    audit events older than audit_retention_days (what every worker also does each purge_interval)."""
    from ..store.housekeeping import purge

    p = ctx.provider()
    counts = purge(p.db, p.settings.audit_retention_days)
    for table, deleted in counts.items():
        ctx.console.print(f"{table}: {deleted} deleted")


@db_app.command("backup")
def db_backup(file: Annotated[str, typer.Argument(help="The backup file to write (must not exist).")]) -> None:
    """Copy a SQLite database with SQLite's online backup API (safe while the broker serves); for
    PostgreSQL, print the pg_dump command to run."""
    import sqlite3

    from sqlalchemy.engine import make_url

    from ..store.db import sqlite_path

    url = ctx.settings().resolved_database_url
    if url.startswith("postgresql"):
        u = make_url(url)
        host = f" -h {u.host}" if u.host else ""
        port = f" -p {u.port}" if u.port else ""
        user = f" -U {u.username}" if u.username else ""
        ctx.console.print("PostgreSQL: back up with pg_dump (the password from PGPASSWORD or ~/.pgpass):",
                          soft_wrap=True)
        ctx.console.print(f"  pg_dump -Fc{host}{port}{user} -d {u.database} -f {file}", soft_wrap=True, markup=False)
        return
    source = sqlite_path(url)
    if source is None or not os.path.isfile(source):
        ctx.fail(f"no SQLite database file at {source or url}")
    if os.path.exists(file):
        ctx.fail(f"{file} exists: choose a new file name")
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(file) as dest:
            src.backup(dest)
        dest.close()
        src.close()
    except (sqlite3.Error, OSError) as exc:
        if os.path.exists(file) and os.path.getsize(file) == 0:
            os.unlink(file)
        ctx.fail(f"backup failed: {exc}")
    ctx.console.print(f"backed up {source} to {file}")


def main() -> None:
    """The ``idbroker`` command (every command but serve: cli/__init__.py)."""
    ctx.run(app)
