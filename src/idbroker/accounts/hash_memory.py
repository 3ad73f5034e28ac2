"""argon2id verification with reused working memory.

Each argon2id verification needs `m` KiB of working memory (19 MiB by default). Taken from
malloc, the buffer is mmap'ed and unmapped again for every hash (asgi.py fixes glibc's mmap
threshold so that an idle worker gives the memory back), and the kernel then faults in and
zeroes ~5000 fresh pages each time: about 9 ms of system CPU per sign-in, half again the hash
itself. Here the argon2 library gets its memory from us instead (its documented allocation
callbacks, `argon2_context.allocate_cbk`): buffers are kept while more hashes are running or
waiting for their turn, and unmapped as soon as none is - a busy server stops paying for page
faults, an idle one keeps nothing.

The computation is argon2's own (`argon2_ctx`, the function `argon2_verify` runs); the library
wipes the memory before handing it back, so a kept buffer holds nothing of the last password.
Only the encoding idbroker writes (``$argon2id$v=19$m=..,t=..,p=..$salt$hash``) is verified
here; `verify` answers None for anything else, and the caller uses argon2-cffi's own path.
"""

from __future__ import annotations

import base64
import hmac
import mmap
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from _argon2_cffi_bindings import ffi, lib

ENCODED = re.compile(r"\$argon2id\$v=19\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})"
                     r"\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{6,})")


class _Buffer:
    """Anonymous memory of `size` bytes, unmapped by `close`; in huge pages where the kernel has them
    (transparent huge pages, asked for with madvise): a new buffer then takes ~10 page faults instead
    of ~5000, and argon2's reads all over it miss the TLB less. One verification on a new buffer,
    19 MiB: 30.0 -> 20.1 ms (system CPU 10.6 -> 3.1 ms), on a kept one 18.8 -> 18.3 ms."""

    def __init__(self, size: int):
        self.size = size
        self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # not shmem: cheaper faults
        try:
            self._map.madvise(mmap.MADV_HUGEPAGE)
        except (AttributeError, OSError):  # not Linux, or a kernel without transparent huge pages
            pass
        self._view = ffi.from_buffer("uint8_t[]", self._map, require_writable=True)
        self.address = ffi.cast("uint8_t *", self._view)

    def close(self) -> None:
        ffi.release(self._view)
        self._map.close()


class WorkMemory:
    """The buffers of one process, and the hashes that want one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: list[_Buffer] = []
        self._wanting = 0
        self._in_use = threading.local()

    @contextmanager
    def wanted(self) -> Iterator[None]:
        """Around a hash, including its wait for a turn: while any hash is inside, buffers are
        kept for the next; the last one out unmaps them."""
        with self._lock:
            self._wanting += 1
        try:
            yield
        finally:
            with self._lock:
                self._wanting -= 1
                spare = self._spare if self._wanting == 0 else []
                if spare:
                    self._spare = []
            for buffer in spare:
                buffer.close()

    def take(self, size: int) -> _Buffer:
        with self._lock:
            for i, buffer in enumerate(self._spare):
                if buffer.size >= size:
                    return self._spare.pop(i)
        return _Buffer(size)

    def give(self, buffer: _Buffer) -> None:
        with self._lock:
            self._spare.append(buffer)


_MEMORY = WorkMemory()
_current = threading.local()  # the buffer of the hash running on this thread


@ffi.callback("int(uint8_t **, size_t)", error=lib.ARGON2_MEMORY_ALLOCATION_ERROR)
def _allocate(memory, size):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202 - a C callback
    buffer = _MEMORY.take(size)
    _current.buffer = buffer
    memory[0] = buffer.address
    return lib.ARGON2_OK


@ffi.callback("void(uint8_t *, size_t)")
def _free(memory, size):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202 - a C callback
    buffer = getattr(_current, "buffer", None)
    _current.buffer = None
    if buffer is not None:
        _MEMORY.give(buffer)


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify(encoded: str, password: bytes, turn: threading.Semaphore) -> bool | None:
    """Whether `password` matches the argon2id hash `encoded`, computed once `turn` lets it run;
    None when `encoded` is not in the form verified here."""
    match = ENCODED.fullmatch(encoded)
    if match is None:
        return None
    m_cost, t_cost, lanes = (int(match.group(i)) for i in (1, 2, 3))
    salt, digest = _b64(match.group(4)), _b64(match.group(5))
    out = ffi.new("uint8_t[]", len(digest))
    pwd = ffi.new("uint8_t[]", password)
    c_salt = ffi.new("uint8_t[]", salt)
    ctx = ffi.new("argon2_context *")
    ctx.out, ctx.outlen = out, len(digest)
    ctx.pwd, ctx.pwdlen = pwd, len(password)
    ctx.salt, ctx.saltlen = c_salt, len(salt)
    ctx.secret, ctx.secretlen, ctx.ad, ctx.adlen = ffi.NULL, 0, ffi.NULL, 0
    ctx.t_cost, ctx.m_cost, ctx.lanes, ctx.threads = t_cost, m_cost, lanes, lanes
    ctx.version = lib.ARGON2_VERSION_NUMBER
    ctx.allocate_cbk, ctx.free_cbk = _allocate, _free
    ctx.flags = lib.ARGON2_DEFAULT_FLAGS
    with _MEMORY.wanted(), turn:
        result = lib.argon2_ctx(ctx, lib.Argon2_id)
    return result == lib.ARGON2_OK and hmac.compare_digest(ffi.buffer(out)[:], digest)
