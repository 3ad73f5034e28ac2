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
