"""Entry point for ASGI servers: ``idbroker.asgi:create`` (a factory) reads settings from the
environment (``IDBROKER_*``, ``IDBROKER_CONFIG``)."""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys

# httpx imports its command-line client (httpx._main: rich, click, pygments - ~80 modules, ~5 MB
# and ~0.1 s of CPU per worker) whenever those are installed, as typer's are. No worker runs it: a
# None entry makes that import fail, and httpx then defines a stub `main` instead. Only when httpx
# is not loaded yet (a worker), so a process that already has the real one keeps it.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]

from .app import create_app  # noqa: E402 - after the line above
from .settings import load_settings  # noqa: E402
from .web.limits import InProgressLimit  # noqa: E402
from .web.proxies import ProxyHeaders  # noqa: E402
from .web.request_log import configure as configure_logging  # noqa: E402
from .web.runtime import settle_heap, start_up  # noqa: E402


def create() -> ProxyHeaders:
    """The application, behind a cap on requests in progress per client address (web/limits.py) -
    the real client's address when trusted proxies forward it (web/proxies.py)."""
    start_up()  # until settle_heap, below
    release_large_buffers()
    hold_stop_signals()
    settings = load_settings()
    log_to_stderr(settings.log_level, settings.log_format)
    app = ProxyHeaders(InProgressLimit(create_app(settings, started=release_stop_signals_soon),
                                       limit=settings.max_requests_per_address), settings.trusted_proxies)
    settle_heap()  # last: all that start-up made lives as long as the worker (web/runtime.py)
    return app


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
RELEASE_AFTER = 0.5  # seconds after the application's start-up: Granian serves by then


def hold_stop_signals() -> None:
    """SIGINT and SIGTERM wait, pending, until the worker serves (`release_stop_signals_soon`).

    Granian (2.8) hangs a worker for good when one of them arrives during the application's start-up:
    its handler blocks before the worker serves, and the supervisor waits for that worker forever. A
    signal to the whole process group does exactly that - Ctrl-C in the terminal a moment after
    `idbroker serve`, or systemd's stop (it signals every process of the service) while a worker
    starts. Held until then, the signal stops the worker the ordinary way."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals_soon() -> None:
    """Called on the worker's event loop when the application has started: Granian then leaves
    the loop, starts serving and runs the loop again, and the held signals are let through then."""
    asyncio.get_running_loop().call_later(RELEASE_AFTER, signal.pthread_sigmask, signal.SIG_UNBLOCK, STOP_SIGNALS)


def log_to_stderr(level: str, log_format: str = "text") -> None:
    """The broker's own log lines (`idbroker.*`) on standard error, one line each (text, or one JSON
    object a line), beside Granian's."""
    configure_logging(level, log_format)


def release_large_buffers() -> None:
    """Each argon2id hash allocates `argon2_memory_kib` (19 MiB by default). glibc raises its mmap
    threshold after the first such buffer is freed and then keeps later ones in its heap, so a
    worker's RSS grows by that much per concurrent hash and never shrinks. A fixed 1 MiB threshold
    keeps large buffers mmap'ed: returned to the system as soon as the hash is done.

    glibc also gives each thread that allocates its own arena (up to 8 per core), and a worker's
    threads (the thread pool, the change feed) each keep theirs partly filled: two arenas, as
    the GIL lets one thread allocate at a time anyway."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
