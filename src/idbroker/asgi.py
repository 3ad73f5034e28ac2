"""Entry point for ASGI servers: ``idbroker.asgi:create`` (a factory) reads settings from the
environment (``IDBROKER_*``, ``IDBROKER_CONFIG``)."""

from __future__ import annotations

import ctypes
import logging

from .app import create_app
from .settings import load_settings
from .web.limits import InProgressLimit


def create() -> InProgressLimit:
    """The application, behind a cap on requests in progress per client address (web/limits.py)."""
    release_large_buffers()
    settings = load_settings()
    log_to_stderr(settings.log_level)
    return InProgressLimit(create_app(settings), limit=settings.max_requests_per_address)


def log_to_stderr(level: str) -> None:
    """The broker's own log lines (`idbroker.*`) on standard error, one line each, beside Granian's."""
    logger = logging.getLogger("idbroker")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def release_large_buffers() -> None:
    """Each argon2id hash allocates `argon2_memory_kib` (19 MiB by default). glibc raises its mmap
    threshold after the first such buffer is freed and then keeps later ones in its heap, so a
    worker's RSS grows by that much per concurrent hash and never shrinks. A fixed 1 MiB threshold
    keeps large buffers mmap'ed: returned to the system as soon as the hash is done."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


M_MMAP_THRESHOLD = -3
