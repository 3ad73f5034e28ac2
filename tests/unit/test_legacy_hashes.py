"""Legacy password hashes (accounts/legacy/, `passwords.HASHERS`): known vectors made here by the
reference libraries (bcrypt, argon2-cffi, hashlib, libpass's passlib.hash) and Firebase's
published modified-scrypt vector; wrong passwords and malformed encodings refused; and a sign-in
through HTTP with an imported hash, after which the database holds argon2id."""

from __future__ import annotations

import base64
import hashlib
import os

import bcrypt
import pytest
from argon2 import PasswordHasher, Type
from passlib import hash as ph
from sqlalchemy import select
from support import ISSUER, form_fields

from idbroker.accounts import passwords
from idbroker.accounts.passwords import HASHERS, Passwords, legacy_hasher, recognised
from idbroker.store.models import User

PASSWORD = "correct horse battery staple é"

# https://github.com/firebase/scrypt README: the project's parameters and one user's hash.
FIREBASE_KEY = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
FIREBASE_VECTOR = ("$firebase-scrypt$r=8,m=14$" + FIREBASE_KEY + "$Bw==$42xEC+ixf3L2lw==$"
                   "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _ldap(prefix: str, digest: str, salt: bytes) -> str:
    return prefix + _b64(hashlib.new(digest, PASSWORD.encode() + salt).digest() + salt)


def _django(name: str) -> str:
    salt = "Xq3mT0nVb1Zr"
    raw = hashlib.pbkdf2_hmac(name, PASSWORD.encode(), salt.encode(), 1000)
    return f"pbkdf2_{name}$1000${salt}${_b64(raw)}"


def vectors() -> list[tuple[str, str, str]]:
    """(scheme, encoded, password): made by the libraries that own each scheme."""
    salt = os.urandom(8)
    return [
        ("bcrypt", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(), PASSWORD),
        ("bcrypt", bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode(), PASSWORD),
        ("bcrypt", "$2y$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()[4:], PASSWORD),
        ("argon2", PasswordHasher(type=Type.I, memory_cost=1024, time_cost=1).hash(PASSWORD), PASSWORD),
        ("argon2", PasswordHasher(type=Type.D, memory_cost=1024, time_cost=1).hash(PASSWORD), PASSWORD),
        ("scrypt", ph.scrypt.using(rounds=10).hash(PASSWORD), PASSWORD),
        ("django_pbkdf2", _django("sha256"), PASSWORD),
        ("django_pbkdf2", _django("sha1"), PASSWORD),
        ("django_pbkdf2", ph.django_pbkdf2_sha256.using(rounds=1000).hash(PASSWORD), PASSWORD),
        ("passlib_pbkdf2", ph.pbkdf2_sha256.using(rounds=1000).hash(PASSWORD), PASSWORD),
        ("passlib_pbkdf2", ph.pbkdf2_sha512.using(rounds=1000).hash(PASSWORD), PASSWORD),
        ("passlib_pbkdf2", ph.pbkdf2_sha1.using(rounds=1000).hash(PASSWORD), PASSWORD),
        ("ldap", _ldap("{SSHA}", "sha1", salt), PASSWORD),
        ("ldap", _ldap("{SSHA512}", "sha512", salt), PASSWORD),
        ("ldap", "{SHA}" + _b64(hashlib.sha1(PASSWORD.encode()).digest()), PASSWORD),
        ("ldap", ph.ldap_salted_sha1.hash(PASSWORD), PASSWORD),
        ("crypt", ph.sha512_crypt.using(rounds=5000).hash(PASSWORD), PASSWORD),
        ("crypt", ph.sha256_crypt.using(rounds=5000).hash(PASSWORD), PASSWORD),
        ("crypt", ph.md5_crypt.hash(PASSWORD), PASSWORD),
        ("firebase_scrypt", FIREBASE_VECTOR, "user1password"),
    ]


def form(encoded: str) -> str:
    """The encoding's marker ("2b", "{SSHA}", "pbkdf2_sha1"): a test id without the random salt, the
    same in every process that collects the tests (pytest-xdist's workers must agree on them)."""
    if encoded.startswith("{"):
        return encoded[:encoded.index("}") + 1]
    return encoded.lstrip("$").split("$", 1)[0]


VECTORS = vectors()
IDS = [f"{scheme}-{form(encoded)}" for scheme, encoded, _ in VECTORS]


@pytest.fixture(scope="module")
def pw() -> Passwords:
    return Passwords(memory_kib=8192, time_cost=1)


def test_every_scheme_has_a_vector():
    assert {scheme for scheme, _, _ in VECTORS} == set(HASHERS)


@pytest.mark.parametrize(("scheme", "encoded", "password"), VECTORS, ids=IDS)
def test_known_vector_verifies_and_is_rehashed(pw, scheme, encoded, password):
    hasher = legacy_hasher(encoded)
    assert hasher is not None and hasher.scheme == scheme
    assert recognised(encoded)
    assert pw.verify(encoded, password)
    assert pw.needs_rehash(encoded)


@pytest.mark.parametrize(("scheme", "encoded", "password"), VECTORS, ids=IDS)
def test_wrong_password_refused(pw, scheme, encoded, password):
    assert not pw.verify(encoded, password + "x")
    assert not pw.verify(encoded, password[:-1])
    assert not pw.verify(encoded, "")


@pytest.mark.parametrize(("scheme", "encoded", "password"), VECTORS, ids=IDS)
def test_tampered_hash_refused(pw, scheme, encoded, password):
    # A character inside the digest, never the last one before the end or the "=" padding: in
    # base64 that one may carry only padding bits, and changing it would decode to the same bytes.
    i = len(encoded.rstrip("=")) - 3
    flipped = encoded[:i] + ("A" if encoded[i] != "A" else "B") + encoded[i + 1:]
    assert flipped != encoded
    assert not pw.verify(flipped, password)


@pytest.mark.parametrize("encoded", [
    "", "plaintext", "$2b$04$short", "$2b$99$" + "a" * 53, "$argon2i$m=1,t=1,p=1$x$y",
    "$scrypt$ln=30,r=8,p=1$c2FsdA$" + "A" * 43,
    "pbkdf2_sha256$0$salt$" + "A" * 44, "pbkdf2_sha256$999999999$salt$" + "A" * 44, "pbkdf2_md5$10$s$" + "A" * 24,
    "$pbkdf2-sha256$1000$!!$" + "A" * 43, "{SSHA}" + _b64(b"short"), "{SHA}" + _b64(b"x" * 21), "{MD5}" + "A" * 24,
    "$6$rounds=1$salt$" + "a" * 86, "$7$whatever", "$md5$zz", "$firebase-scrypt$r=8,m=14$$Bw==$c2FsdA==$AAAA",
    "$firebase-scrypt$r=8,m=30$" + FIREBASE_KEY + "$Bw==$c2FsdA==$" + FIREBASE_KEY, "$argon2id$garbage",
])
def test_malformed_encodings_fail_closed(pw, encoded):
    assert legacy_hasher(encoded) is None or encoded.startswith("$argon2id$")
    assert not recognised(encoded)
    assert not pw.verify(encoded, "anything")
    assert not pw.verify(encoded, "")


def test_our_own_argon2id_is_not_legacy(pw):
    own = pw.hash(PASSWORD)
    assert recognised(own) and pw.verify(own, PASSWORD) and not pw.needs_rehash(own)


def test_foreign_argon2id_parameters_verify_then_rehash(pw):
    foreign = PasswordHasher(memory_cost=1024, time_cost=1, parallelism=2).hash(PASSWORD)
    assert pw.verify(foreign, PASSWORD) and pw.needs_rehash(foreign) and not pw.verify(foreign, "nope")


def test_the_table_keys_are_the_hashers_schemes():
    assert passwords.HASHERS == {cls.scheme: cls for cls in HASHERS.values()}


@pytest.mark.parametrize("encoded", [
    ph.sha512_crypt.using(rounds=5000).hash(PASSWORD), bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
    FIREBASE_VECTOR], ids=["sha512_crypt", "bcrypt", "firebase"])
def test_sign_in_with_an_imported_hash_stores_argon2id(http, provider, encoded):
    password = "user1password" if "firebase" in encoded else PASSWORD
    provider.users.create("imported@example.com", None, email_verified=True)
    with provider.db.session() as s:
        s.scalars(select(User).where(User.email == "imported@example.com")).one().password_hash = encoded
    page = http.get("/login")
    wrong = http.post("/login", data={**form_fields(page.text), "username": "imported@example.com",
                                      "password": password + "!"})
    assert wrong.status_code != 303
    with provider.db.session(write=False) as s:
        assert s.scalar(select(User.password_hash).where(User.email == "imported@example.com")) == encoded
    page = http.get("/login")
    r = http.post("/login", data={**form_fields(page.text), "username": "imported@example.com", "password": password})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/", r.text
    with provider.db.session(write=False) as s:
        stored = s.scalar(select(User.password_hash).where(User.email == "imported@example.com"))
    assert stored.startswith("$argon2id$") and provider.passwords.verify(stored, password)
    assert not provider.passwords.needs_rehash(stored)
