"""Password verification with reused argon2 working memory (accounts/hash_memory.py) agrees with
argon2-cffi on every encoding, alone and in parallel, and keeps no memory once idle."""

import threading
from concurrent.futures import ThreadPoolExecutor

import argon2
import pytest

from idbroker.accounts import hash_memory
from idbroker.accounts.passwords import Passwords

FAST = dict(memory_cost=8192, time_cost=1, parallelism=1)


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(memory_kib=8192, time_cost=1, parallelism=1, concurrency=2)


@pytest.mark.parametrize("password", ["correct horse", "", "é ü 😀", "x" * 1000])
def test_matches_argon2_cffi(passwords: Passwords, password: str) -> None:
    encoded = argon2.PasswordHasher(**FAST).hash(password)
    assert passwords.verify(encoded, password)
    assert not passwords.verify(encoded, password + "x")


@pytest.mark.parametrize("hasher", [
    argon2.PasswordHasher(memory_cost=16384, time_cost=2, parallelism=4),  # other parameters: still ours
    argon2.PasswordHasher(type=argon2.Type.I, **FAST),                      # another type: argon2-cffi's path
])
def test_other_parameters_and_types(passwords: Passwords, hasher: argon2.PasswordHasher) -> None:
    encoded = hasher.hash("secret")
    assert passwords.verify(encoded, "secret")
    assert not passwords.verify(encoded, "secrets")


def test_damaged_and_missing_hashes_fail(passwords: Passwords) -> None:
    assert not passwords.verify(None, "anything")
    assert not passwords.verify("not a hash", "anything")
    assert not passwords.verify("$argon2id$v=19$m=8192,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAA", "x")
    assert not passwords.verify("$argon2id$v=19$m=1,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAA", "x")


def test_an_unknown_account_costs_a_whole_verification_with_the_configured_parameters(monkeypatch) -> None:
    """The timing equaliser is made without hashing (a worker's start-up pays no hash for it), yet
    verifying against it runs argon2id with the configured parameters: hash_memory takes it as its
    own encoding and argon2 asks for the configured working memory, and argon2-cffi agrees that it
    is well formed."""
    monkeypatch.setattr(argon2.PasswordHasher, "hash", lambda *a, **k: pytest.fail("hashed at construction"))
    made = Passwords(memory_kib=9216, time_cost=3, parallelism=2)
    params = argon2.extract_parameters(made._dummy)
    assert (params.type, params.memory_cost, params.time_cost, params.parallelism, params.salt_len,
            params.hash_len) == (argon2.Type.ID, 9216, 3, 2, 16, 32)
    assert made._dummy != Passwords(memory_kib=9216, time_cost=3, parallelism=2)._dummy  # random salt each time
    taken = []
    take = hash_memory._MEMORY.take
    monkeypatch.setattr(hash_memory._MEMORY, "take", lambda size: taken.append(size) or take(size))
    assert not made.verify(None, "anything")
    assert taken == [9216 * 1024]  # argon2 asked for the configured working memory: it computed
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        argon2.PasswordHasher(memory_cost=9216, time_cost=3, parallelism=2).verify(made._dummy, "anything")


def test_parallel_verifications_then_nothing_kept(passwords: Passwords) -> None:
    right = argon2.PasswordHasher(**FAST).hash("right")
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: passwords.verify(right, "right" if i % 2 else "wrong"), range(24)))
    assert outcomes == [bool(i % 2) for i in range(24)]
    assert hash_memory._MEMORY._spare == []


def test_kept_memory_holds_nothing_of_the_last_password() -> None:
    encoded = argon2.PasswordHasher(**FAST).hash("right")
    with hash_memory._MEMORY.wanted():  # another hash waiting: the buffer is kept, not unmapped
        assert hash_memory.verify(encoded, b"right", threading.Semaphore(1))
        (kept,) = hash_memory._MEMORY._spare
        assert not any(kept._map[:])  # argon2 wiped it before handing it back
    assert hash_memory._MEMORY._spare == []


def _thp_enabled() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _thp_enabled(), reason="the kernel has no transparent huge pages")
def test_working_memory_is_in_huge_pages_where_the_kernel_has_them() -> None:
    import ctypes

    buffer = hash_memory._Buffer(19 * 1024 * 1024)
    try:
        address = int(hash_memory.ffi.cast("uintptr_t", buffer.address))
        ctypes.memset(address, 1, buffer.size)  # touched, as argon2 does
        huge_kib = 0
        with open("/proc/self/smaps") as smaps:
            inside = False
            for line in smaps:
                if "-" in line.split(" ", 1)[0] and ":" not in line.split(" ", 1)[0]:
                    start, end = (int(x, 16) for x in line.split(" ", 1)[0].split("-"))
                    inside = start <= address < end
                elif inside and line.startswith("AnonHugePages:"):
                    huge_kib = int(line.split()[1])
        assert huge_kib >= 8 * 1024  # most of the 19 MiB (the unaligned ends stay in small pages)
    finally:
        buffer.close()
