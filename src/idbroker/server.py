"""The production server: Granian serving ``idbroker.asgi:create`` in worker processes.

``idbroker serve`` is this module's `main` (cli/__init__.py runs it without the rest of the command
line): it checks its options, the settings and the port, prepares the store and starts Granian. The
process never loads the CLI's libraries (typer, rich), so the Granian supervisor and the workers it
forks carry only Granian and the application - about 12 MB less per worker - and a start does not
pay for them either (~0.3 s: they were loaded for the options, then thrown away by an exec).

The supervisor prepares the store (`prepare`: migrations, signing keys, the configuration file's
providers and sources) with the application's own modules, loaded once, before Granian forks the
workers, which inherit them: a worker only builds its services (``create``). Importing the
application is most of a start (~0.5 s on two cores); loaded in every worker instead, 1.3-1.7 s to
the first 200 (``./bench/run``'s cold start).

Two settings guard the service as a whole:

* A worker that dies (killed for memory, a crash in native code) is replaced: without
  ``respawn_failed_workers`` Granian shuts the whole server down when any worker exits. A worker
  that dies again within seconds of its replacement still stops the server (Granian's crash-loop
  guard), so a broken deployment fails loudly instead of restarting forever.
* A connection must send its request headers within `header_read_timeout` seconds (10). Each worker
  serves at most backlog / workers connections at once and a connection that trickles its headers
  holds one of those places, so the timeout bounds how long a flood of such connections can keep
  everyone else waiting. Requests in progress per client address are limited in the application
  (web/limits.py).
"""

from __future__ import annotations

import argparse
import errno
import gc
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from .settings import ServerSettings, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sqlalchemy import URL
    from sqlalchemy.exc import DBAPIError

BACKLOG = 2048
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's variable
HEADER_READ_TIMEOUT = ServerSettings.header_read_timeout  # default seconds (Granian's own is 30)


class Help(argparse.HelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):  # type: ignore[no-untyped-def]
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)  # as the other commands'


class OptionsParser(argparse.ArgumentParser):
    """A mistake on the command line is one line on stderr and exit status 2, as in every other
    command (cli/context.py)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see: {self.prog} --help)\n")
        sys.exit(2)


def options_parser() -> OptionsParser:
    parser = OptionsParser(prog="idbroker serve", formatter_class=Help, description="Apply migrations, make sure "
                           "signing keys exist, and serve the broker with Granian.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: 127.0.0.1).")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: the port setting, 8000).")
    parser.add_argument("--workers", type=int, default=1, help="Worker processes (default: 1).")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                        help="Log every request (default: no).")
    return parser


def prepare_metrics_dir(data_dir: str) -> str:
    """This run's directory of metric files (web/metrics.py), emptied: the workers' values from an
    earlier run must not be added to this one's. Set before any worker imports prometheus_client,
    which chooses at import whether its values live in files."""
    path = Path(data_dir).resolve() / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def port_problem(host: str, port: int) -> str | None:
    """Why the server cannot listen on host:port, or None. Granian's workers each bind with
    SO_REUSEPORT, so a second server on a port already served would bind too and share its
    connections silently; a plain bind (SO_REUSEADDR only, which on Linux never joins a listening
    socket) fails instead, and so does one on a port another program holds."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    for family, kind, proto, _name, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                probe.listen(1)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"port {port} on {host} is already in use (another idbroker or program is listening)"
                return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


class StartupProblem(Exception):
    """What stops the server from starting, in one line."""


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
    from sqlalchemy import URL

    shown = url.render_as_string(hide_password=True) if isinstance(url, URL) else (url or "")
    lines = [line.strip() for line in str(exc.orig or exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    return f"cannot use the database{' ' + shown if shown else ''}: {reason}"


class Prepared(NamedTuple):
    told: list[str]   # lines for the operator
    migrated: bool    # the store was migrated (Alembic was loaded and ran)


def prepare(settings: Settings, host: str, port: int, workers: int) -> Prepared:
    """Readies the store for serving - migrations applied, signing keys made, the providers and
    sources the configuration file declares ([[upstreams]], [[migration.sources]]) applied - and
    returns what to tell the operator: what a first start created, with the next step, and where
    the broker serves; and whether it migrated. Raises StartupProblem for a database that cannot be
    used or a declared entry that is refused. Loads the whole application first (see the module's
    notes)."""
    from sqlalchemy.exc import OperationalError

    from . import asgi  # noqa: F401 - before the others: its note on httpx must precede any httpx import
    from .cli.first_run import FirstStart
    from .federation import declared as declared_upstreams
    from .federation.registry import InvalidUpstream
    from .migration import declared as declared_sources
    from .migration.sources import InvalidSource
    from .provider import Provider
    from .store.migrate import upgrade

    first = FirstStart.before(settings)
    p = Provider(settings)
    migrated = False
    try:
        migrated = upgrade(p.db.engine)
        algs_before = {k.alg for k, _ in p.keys.list()}
        p.keys.ensure()
        new_keys = sorted({k.alg for k, _ in p.keys.list()} - algs_before)
        lines = [*declared_upstreams.apply(p.upstreams, settings.upstreams),
                 *declared_sources.apply(p.migration_sources, settings.migration_sources)]
    except OperationalError as exc:
        raise StartupProblem(database_problem(exc, p.db.engine.url)) from None
    except (InvalidUpstream, InvalidSource) as exc:
        raise StartupProblem(str(exc)) from None
    finally:
        p.db.dispose()  # no connection or thread of the supervisor's outlives the fork
    return Prepared([*lines, *first.report(new_keys),
                     f"idbroker serving issuer {p.issuer} on http://{host}:{port} "
                     f"({workers} worker{'s' if workers != 1 else ''}, store: {p.db.engine.url.get_backend_name()})",
                     f"discovery: {p.endpoint('discovery')}"], migrated)


def main(argv: list[str] | None = None) -> None:
    """`idbroker serve [options]`."""
    from .web.runtime import start_up

    args = options_parser().parse_args(argv)
    start_up()  # until the workers are forked (`serve`: freeze_heap)
    try:
        serve(args)
    finally:  # a start that stops early leaves the collector on (typer's test runner runs this in its process)
        gc.enable()


def serve(args: argparse.Namespace) -> None:
    from .web.runtime import freeze_heap, settle_heap

    if args.workers < 1:
        sys.exit("error: --workers must be at least 1")
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit("error: invalid configuration: " + "; ".join(exc.problems))
    port = args.port or settings.port
    busy = port_problem(args.host, port)
    if busy:
        sys.exit(f"error: {busy}")

    from .cli.first_run import issuer_configured, local_issuer

    if not issuer_configured(settings):
        # No issuer configured: the local address is the issuer (development); `localhost` so that
        # passkeys work (browsers refuse an IP address as a WebAuthn RP id).
        os.environ["IDBROKER_ISSUER"] = local_issuer(args.host, port)
    # Share the cores among the workers' password hashing.
    os.environ.setdefault("IDBROKER_HASH_CONCURRENCY", str(max(1, (os.cpu_count() or 1) // args.workers)))
    settings = load_settings()  # the same settings the workers read (from the environment set above)

    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    problem = data_dir_problem(settings)
    if problem:
        sys.exit(f"error: {problem}")
    try:
        os.environ[MULTIPROC_ENV] = prepare_metrics_dir(settings.data_dir)
    except OSError as exc:
        sys.exit(f"error: cannot prepare the metrics directory under data_dir: {exc.strerror or exc}")
    try:  # after the metrics directory: prometheus-client reads it when the application imports it
        told, migrated = prepare(settings, args.host, port, args.workers)
    except StartupProblem as exc:
        sys.exit(f"error: {exc}")
    print("\n".join(told), flush=True)
    # What the workers inherit stays out of their collections (and shared: no copy-on-write); what
    # migrating left (Alembic's engine and pool, ~10,000 objects) is collected first.
    (settle_heap if migrated else freeze_heap)()
    Granian("idbroker.asgi:create", factory=True, address=args.host, port=port, workers=args.workers,
            interface=Interfaces.ASGI, log_access=args.access_log and settings.log_format != "json", backlog=BACKLOG,
            http1_settings=HTTP1Settings(header_read_timeout=settings.header_read_timeout * 1000),
            respawn_failed_workers=True, log_dictconfig=granian_log_config(settings.log_format)).serve()


def granian_log_config(log_format: str) -> dict[str, object] | None:
    """With log_format json, Granian's own lines are JSON objects too (web/request_log.py)."""
    if log_format != "json":
        return None
    formatter = {"()": "idbroker.web.request_log.JsonFormatter"}
    stream = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"json": formatter},
            "handlers": {"console": stream},
            "loggers": {"_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
                        "granian.access": {"handlers": ["console"], "level": "INFO", "propagate": False}}}


if __name__ == "__main__":
    main()
