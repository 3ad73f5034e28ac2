"""The ``idbroker`` command line (typer + rich), and a fast path for ``idbroker serve``.

``main`` is the console entry point. A plain ``idbroker serve`` (the options below, well formed, no
problem to report) prepares the store and starts Granian without importing the command line - typer,
click, rich and every command module, ~0.4 s of CPU before the workers can even be spawned (issue 14:
cold start <= 1 s). Anything else - ``--help``, a malformed or unknown option, invalid settings, a
busy port, a data_dir to create or that cannot be used, declared ``[[upstreams]]`` or
``[[migration.sources]]`` - goes to the typer application (cli/main.py), which checks it all again and
says what is wrong exactly as always; the fast path decides before it changes anything.
"""

from __future__ import annotations

import os
import re
import sys
import types
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from typer import Typer

    app: Typer

__all__ = ["app", "main"]


class ServeArgs(NamedTuple):
    config: str | None
    host: str
    port: int | None
    workers: int
    access_log: bool


DISCOVERY_PATH = "/.well-known/openid-configuration"  # provider.py ENDPOINTS["discovery"] (checked by a test)
_INT = re.compile(r"[0-9]{1,9}")
_VALUED = {"--host": "host", "--port": "port", "--workers": "workers"}
_FLAGS = {"--access-log": True, "--no-access-log": False}


def serve_args(argv: list[str]) -> ServeArgs | None:
    """`idbroker [--config FILE|-c FILE] serve [--host H] [--port N] [--workers N] [--[no-]access-log]`,
    each at most once, values plain; None for anything else (the typer application handles it)."""
    rest = list(argv)
    config = None
    if rest[:1] in (["--config"], ["-c"]) and len(rest) >= 2 and rest[1] and not rest[1].startswith("-"):
        config, rest = rest[1], rest[2:]
    if rest[:1] != ["serve"]:
        return None
    values: dict[str, Any] = {}
    items = iter(rest[1:])
    for item in items:
        name, sep, value = item.partition("=")
        if name in _VALUED and _VALUED[name] not in values:
            if not sep:
                value = next(items, "")
            if not value or value.startswith("-"):
                return None
            if name != "--host":
                if not _INT.fullmatch(value):
                    return None
                values[_VALUED[name]] = int(value)
            else:
                values["host"] = value
        elif item in _FLAGS and "access_log" not in values:
            values["access_log"] = _FLAGS[item]
        else:
            return None
    return ServeArgs(config, values.get("host", "127.0.0.1"), values.get("port") or None,
                     values.get("workers", 1), values.get("access_log", False))


def serve_fast(args: ServeArgs) -> bool:
    """What `idbroker serve` does (cli/main.py `serve`), without the command line's libraries; False,
    having changed nothing, when the typer application must run instead. On success this process
    becomes the server (exec) and the call does not return."""
    from ..server import port_problem
    from ..settings import SettingsError, load_settings
    from .first_run import issuer_configured, local_issuer

    if args.config:
        os.environ["IDBROKER_CONFIG"] = os.path.abspath(args.config)  # as ctx.set_config
    try:
        loaded = load_settings(args.config)
    except SettingsError:
        return False
    local = not issuer_configured(loaded)
    port = args.port or loaded.port
    if loaded.upstreams or loaded.migration_sources or not _data_dir_ready(loaded):
        return False
    if port_problem(args.host, port):
        return False
    if local:
        os.environ["IDBROKER_ISSUER"] = local_issuer(args.host, port)
    try:
        settings = load_settings(args.config)  # with the issuer the server will have
    except SettingsError:
        if local:
            del os.environ["IDBROKER_ISSUER"]
        return False
    # Share the cores among the workers' password hashing.
    os.environ.setdefault("IDBROKER_HASH_CONCURRENCY", str(max(1, (os.cpu_count() or 1) // max(1, args.workers))))
    _prepare_and_serve(settings, args.host, port, args.workers, args.access_log)
    return True  # not reached: the server replaced this process


def _data_dir_ready(loaded: Any) -> bool:
    """data_dir needs no creating and is usable (else cli/context.py `data_dir_problem` deals with it)."""
    if loaded.database_url and loaded.secret_key:
        return True
    path = os.path.realpath(loaded.data_dir)
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _prepare_and_serve(settings: Any, host: str, port: int, workers: int, access_log: bool) -> None:
    """Migrations, signing keys, the start lines, then Granian - as `serve` with `ctx.provider()`,
    whose services `serve` does not use beyond the store and the key store."""
    from sqlalchemy.exc import OperationalError

    from ..server import exec_server
    from ..store.db import Database
    from .first_run import FirstStart

    first = FirstStart.before(settings)
    settings.ensure_secret_key()  # as Provider(settings)
    db = Database(settings.resolved_database_url)
    try:
        _upgrade(db)
    except OperationalError as exc:
        _error_exit(exc, db.engine.url)
    keys = key_store(settings, db)
    try:
        algs_before = {k.alg for k, _ in keys.list()}
        keys.ensure()
        new_keys = sorted({k.alg for k, _ in keys.list()} - algs_before)
    except OperationalError as exc:
        _error_exit(exc)
    lines = [(line, True) for line in first.report(new_keys)]
    lines.append((f"idbroker serving issuer [bold]{settings.issuer}[/] on http://{host}:{port} "
                  f"({workers} worker{'s' if workers != 1 else ''}, store: {db.engine.url.get_backend_name()})",
                  False))
    lines.append((f"discovery: {settings.issuer + DISCOVERY_PATH}", False))
    show(lines)
    db.dispose()
    exec_server(host, port, workers, access_log)


def key_store(settings: Any, db: Any) -> Any:
    """The key store as Provider(settings).keys is built (a test compares them)."""
    from ..keys.keystore import KeyStore

    return KeyStore(db, settings.secret_bytes(), default_alg=settings.signing_alg,
                    activation_delay=settings.key_activation_delay,
                    max_token_ttl=max(settings.access_token_ttl, settings.id_token_ttl, 3600),
                    cache_seconds=settings.cache_seconds)


def _upgrade(db: Any) -> None:
    # alembic's mako loads pygments (~70 ms) only to highlight HTML error pages; this process
    # renders none and is replaced by the server right after.
    sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]
    from ..store.migrate import upgrade

    upgrade(db.engine)


def _error_exit(exc: Any, url: Any = None) -> None:
    """A database that cannot be used: one line and exit 1, as `idbroker serve` says it."""
    from . import context as ctx

    ctx.error_line(ctx.database_problem(exc, url))
    sys.exit(1)


# -- the start lines without rich, when rich would print them plain -------------------------------------
_TAGS = re.compile(r"\[(?:bold|bold yellow|/)\]")
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")  # rich's emoji codes (rich/_emoji_replace.py)
_EMOJI_NAME = re.compile(r"[\w+\-]+")
_WORD = re.compile(r"\s*\S+\s*")
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "JUPYTER_COLUMNS", "TERM")
WIDTH = 80  # rich's width for a console that is not a terminal


def show(lines: list[tuple[str, bool]]) -> None:
    """Print rich-markup lines (text, soft_wrap) on stdout exactly as `ctx.console.print(text,
    soft_wrap=...)` does: rendered here when stdout is not a terminal and the text is plain ASCII
    (the log file of a service), else by rich itself."""
    rendered = [plain(text, soft) for text, soft in lines] if _plain_console() else None
    if rendered is None or None in rendered:
        from rich.console import Console

        console = Console()
        for text, soft in lines:
            console.print(text, soft_wrap=soft)
        return
    sys.stdout.write("".join(f"{r}\n" for r in rendered))


def _plain_console() -> bool:
    if any(os.environ.get(name) for name in _RICH_ENV if name != "TERM") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return not sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def plain(text: str, soft_wrap: bool, width: int = WIDTH) -> str | None:
    """`text` (rich markup) as rich prints it on a console that is not a terminal, or None when
    that needs rich (other markup, emoji codes, non-ASCII, control characters)."""
    out = _TAGS.sub("", text)
    if "[" in out or "]" in out or not all(" " <= ch <= "~" for ch in out):
        return None
    if any(_EMOJI_NAME.fullmatch(m.group(2)) for m in _EMOJI.finditer(out)):
        return None
    if soft_wrap or len(out) <= width:
        return out
    return "\n".join(_wrap(out, width))


def _wrap(text: str, width: int) -> list[str]:
    """rich's word wrap (rich/_wrap.py divide_line with fold, then Text.rstrip_end), for ASCII."""
    breaks: list[int] = []
    offset = 0
    for m in _WORD.finditer(text):
        start, word = m.start(), m.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            chunks = [word[i:i + width] for i in range(0, len(word), width)]
            for i, chunk in enumerate(chunks):
                if start:
                    breaks.append(start)
                if i == len(chunks) - 1:
                    offset = len(chunk)
                else:
                    start += len(chunk)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    bounds = [0, *breaks, len(text)]
    lines = [text[a:b] for a, b in pairwise(bounds) if b > a]
    return [line if len(line) <= width else line[:width] + line[width:].rstrip() for line in lines]


# -- the entry point ----------------------------------------------------------------------------------
def main() -> None:
    """The ``idbroker`` command (cli/main.py `main`), `serve` by the fast path when it can."""
    args = serve_args(sys.argv[1:])
    if args is not None:
        serve_fast(args)
    from .main import main as full

    full()


class _Package(types.ModuleType):
    """Keeps `idbroker.cli.main` the entry point function (as when this package imported it from
    cli/main.py), not the submodule the import system binds there once cli/main.py is loaded."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "main" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name == "app":
        from .main import app as typer_app

        return typer_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
