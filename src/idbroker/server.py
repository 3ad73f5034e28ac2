"""The production server: Granian serving ``idbroker.asgi:create`` in worker processes.

``idbroker serve`` prepares the store (migrations, signing keys) and then replaces itself with
``python -m idbroker.server``, so the Granian supervisor and the workers it forks carry only
Granian and the application - not the CLI (typer, rich) and the services it built: about 12 MB
less per worker, and a 30 MB supervisor instead of 95 MB.

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
import os
import shutil
import socket
import sys
from pathlib import Path

from .settings import ServerSettings, load_settings

BACKLOG = 2048
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's variable
HEADER_READ_TIMEOUT = ServerSettings.header_read_timeout  # default seconds (Granian's own is 30)


def command(host: str, port: int, workers: int, access_log: bool) -> list[str]:
    """The argv that starts this module with these settings."""
    argv = [sys.executable, "-m", "idbroker.server", "--host", host, "--port", str(port), "--workers", str(workers)]
    return argv + (["--access-log"] if access_log else [])


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="idbroker.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    busy = port_problem(args.host, args.port)  # checked again: the port may have been taken since
    if busy:
        sys.exit(f"idbroker: {busy}")
    settings = load_settings()  # the same settings the workers read
    header_read_timeout = settings.header_read_timeout
    try:
        os.environ[MULTIPROC_ENV] = prepare_metrics_dir(settings.data_dir)
    except OSError as exc:
        sys.exit(f"idbroker: cannot prepare the metrics directory under data_dir: {exc.strerror or exc}")
    Granian("idbroker.asgi:create", factory=True, address=args.host, port=args.port, workers=args.workers,
            interface=Interfaces.ASGI, log_access=args.access_log and settings.log_format != "json", backlog=BACKLOG,
            http1_settings=HTTP1Settings(header_read_timeout=header_read_timeout * 1000),
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


def exec_server(host: str, port: int, workers: int, access_log: bool) -> None:
    """Replace this process with the server (same pid, environment and open terminal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = command(host, port, workers, access_log)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
