"""Signing keys in the store, private halves encrypted at rest with JWE (dir + A256GCM).

One key of ENC_ALGS is there for encryption, not signing: clients encrypt request objects to it
(RFC 9101 §6.1, oauth2/request_objects.py); it is published in JWKS with `use` enc, never signs,
and is not among the keys that verify tokens. It rotates like the others (`rotate("RSA-OAEP-256")`);
every published one decrypts.

Lifecycle (``keys rotate``): a new key is published in JWKS at once and signs only from
``activate_at`` (after ``key_activation_delay``), so verifiers that cache JWKS see it first.
When a newer key activates, the previous one gets ``retire_after`` = that moment + the longest
token lifetime, and stays in JWKS until then.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwe, jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from ..security import derive_key, loads_bounded, random_token
from ..store.db import Database, aware
from ..store.models import SigningKey

log = logging.getLogger("idbroker.keys")

ALGS = ("ES256", "RS256")
ENC_ALGS = ("RSA-OAEP-256",)  # discovery: request_object_encryption_alg_values_supported
JWE_HEADER = {"alg": "dir", "enc": "A256GCM"}
CONTENT_ENCS = ("A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512")  # ..._encryption_enc_values_supported


@dataclass(frozen=True)
class KeyView:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    activate_at: datetime
    retire_after: datetime | None
    created_at: datetime

    def state(self, now: datetime, active_kid: str | None) -> str:
        if self.kid == active_kid:
            return "active"
        if self.activate_at > now:
            return "next"
        return "retired"


class KeyStore:
    def __init__(self, db: Database, master_secret: bytes, *, default_alg: str = "ES256",
                 activation_delay: int = 300, max_token_ttl: int = 3600, cache_seconds: int = 5):
        self.db = db
        self._wrap_key = OctKey.import_key(derive_key(master_secret, "idbroker signing-key encryption"))
        self.default_alg = default_alg
        self.activation_delay = activation_delay
        self.max_token_ttl = max_token_ttl
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._signing: dict[str, tuple[str, Any]] = {}   # alg -> (kid, private key)
        self._public = KeySet([])
        self._jwks: dict[str, Any] = {"keys": []}
        self._jwks_bytes = b'{"keys":[]}'
        self._keys: dict[tuple[str, bool], Any] = {}  # (kid, private?) -> imported key
        self._kids: tuple[list[str], dict[str, str]] | None = None  # (published kids, alg -> signing kid)
        self._decrypting: dict[str, tuple[str, str]] = {}  # published encryption kid -> (alg, private JWE)

    # -- generation and storage -------------------------------------------------------------
    def _encrypt(self, private: dict[str, Any]) -> str:
        return jwe.encrypt_compact(JWE_HEADER, json.dumps(private).encode(), self._wrap_key)

    def _decrypt(self, token: str) -> dict[str, Any]:
        return json.loads(jwe.decrypt_compact(token, self._wrap_key).plaintext)

    def create(self, alg: str | None = None, *, activate_in: int | None = None) -> KeyView:
        alg = alg or self.default_alg
        kid = random_token(12)
        params = {"kid": kid, "alg": alg, "use": "enc" if alg in ENC_ALGS else "sig"}
        if alg in ENC_ALGS:
            key: Any = RSAKey.generate_key(2048, parameters=params, private=True)
        elif alg == "ES256":
            key = ECKey.generate_key("P-256", parameters=params, private=True)
        elif alg == "RS256":
            key = RSAKey.generate_key(2048, parameters=params, private=True)
        else:
            raise ValueError(f"unsupported signing algorithm {alg}")
        now = datetime.now(UTC)  # microseconds: orders keys created within the same second
        delay = self.activation_delay if activate_in is None else activate_in
        with self.db.session() as s:
            row = SigningKey(kid=kid, alg=alg, public_jwk=key.as_dict(private=False),
                             private_jwe=self._encrypt(key.as_dict(private=True)),
                             created_at=now, activate_at=now + timedelta(seconds=delay), retire_after=None)
            s.add(row)
        self.invalidate()
        return _view(row)

    def ensure(self) -> None:
        """At start: make sure a key of each algorithm exists (no delay for the first)."""
        with self.db.session(write=False) as s:
            present = set(s.scalars(select(SigningKey.alg).distinct()))
        for alg in (*ALGS, *ENC_ALGS):
            if alg not in present:
                self.create(alg, activate_in=0)

    def rotate(self, alg: str | None = None, *, immediately: bool = False) -> KeyView:
        return self.create(alg, activate_in=0 if immediately else None)

    def list(self) -> list[tuple[KeyView, str]]:
        now = datetime.now(UTC)
        with self.db.session(write=False) as s:
            rows = [_view(r) for r in s.scalars(select(SigningKey).order_by(SigningKey.created_at))]
        active = {alg: kid for alg, kid in _active_kids(rows, now).items()}
        return [(r, r.state(now, active.get(r.alg))) for r in rows]

    # -- cache used on every request ---------------------------------------------------------
    def invalidate(self) -> None:
        self._loaded_at = 0.0

    def _refresh(self) -> None:
        """Reloads the keys when the last load is `cache_seconds` old. When the store cannot be
        read (restarting, its connections terminated), the keys loaded last go on serving, and the
        store is asked again a second later: a key changes only by rotation, which publishes a new
        key before it signs and keeps an old one published for the longest token lifetime after it
        stops signing, so keys a little stale still sign and verify correctly. Failing instead would
        fail work already done - a token request whose refresh token was rotated just before, whose
        client would then present the used token again and have its grant revoked as a reuse."""
        if time.monotonic() - self._loaded_at < self.cache_seconds and self._kids is not None:
            return
        # With keys loaded, a request that finds another thread reloading serves those instead of
        # waiting for it: against a store that hangs, rather than refuses, the reload waits for its
        # connect or statement timeout, and every request of the worker would wait with it.
        if not self._lock.acquire(blocking=self._kids is None):
            return
        try:
            if time.monotonic() - self._loaded_at < self.cache_seconds and self._kids is not None:
                return
            try:
                self._load()
            except (OperationalError, InterfaceError) as exc:
                if self._kids is None:  # never loaded: nothing to serve
                    raise
                log.warning("the signing keys could not be reloaded (%s); serving the keys loaded before",
                            type(exc.__cause__ or exc).__name__)
                self._loaded_at = time.monotonic() - max(self.cache_seconds - 1, 0)
        finally:
            self._lock.release()

    def _load(self) -> None:
        now = datetime.now(UTC)
        with self.db.session(write=False) as s:
            rows = list(s.scalars(select(SigningKey).order_by(SigningKey.activate_at, SigningKey.created_at)))
        views = [_view(r) for r in rows]
        active = _active_kids(views, now)
        # Retire keys superseded by a newer active one (written once, by whichever worker sees it).
        superseded = {}
        for v in views:
            newest = active.get(v.alg)
            if newest and v.kid != newest and v.activate_at <= now and v.retire_after is None:
                newer = next(x for x in views if x.kid == newest)
                superseded[v.kid] = newer.activate_at + timedelta(seconds=self.max_token_ttl)
        if superseded:
            with self.db.session() as s:
                for kid, when in superseded.items():
                    s.get(SigningKey, kid).retire_after = when
            views = [_view_with(v, superseded.get(v.kid, v.retire_after)) for v in views]
        published = [v for v in views if v.retire_after is None or v.retire_after > now]
        kids = ([v.kid for v in published], active)
        if kids != self._kids:  # only when the keys changed: new key objects and JWKS document
            # Published before they sign: requests read these while a reload runs (`_refresh`), so a
            # key that starts signing is in the verifying set and JWKS by then.
            by_kid = {r.kid: r for r in rows}
            self._public = KeySet([self._imported(v.kid, v.public_jwk, v.alg, private=False)
                                   for v in published if v.alg in ALGS])
            self._decrypting = {v.kid: (v.alg, by_kid[v.kid].private_jwe) for v in published if v.alg in ENC_ALGS}
            self._jwks = {"keys": [v.public_jwk for v in published]}
            self._jwks_bytes = json.dumps(self._jwks, separators=(",", ":")).encode()
            self._signing = {alg: (kid, self._imported(kid, by_kid[kid].private_jwe, alg, private=True))
                             for alg, kid in active.items() if alg in ALGS}
            self._kids = kids
        self._loaded_at = time.monotonic()

    def _imported(self, kid: str, source: Any, alg: str, *, private: bool) -> Any:
        """A key object, imported once per key id and kept: importing an RSA private key checks
        it, which takes tens of milliseconds, and this runs every `cache_seconds` in each worker."""
        cached = self._keys.get((kid, private))
        if cached is None:
            data = self._decrypt(source) if private else source
            cached = (ECKey if alg == "ES256" else RSAKey).import_key(data)
            self._keys[(kid, private)] = cached
        return cached

    def jwks(self) -> dict[str, Any]:
        self._refresh()
        return self._jwks

    def jwks_bytes(self) -> bytes:
        self._refresh()
        return self._jwks_bytes

    def public_keyset(self) -> KeySet:
        self._refresh()
        return self._public

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT", alg: str | None = None) -> str:
        self._refresh()
        alg = alg or self.default_alg
        if alg not in self._signing:
            alg = self.default_alg
        kid, key = self._signing[alg]
        return jwt.encode({"alg": alg, "kid": kid, "typ": typ}, claims, key)

    def decrypt(self, token: str) -> bytes:
        """The plaintext of a compact JWE sent to the broker's encryption key (its `kid`, or the
        only one published when it names none). Raises joserfc errors or ValueError."""
        self._refresh()
        segment = token.split(".", 1)[0]
        header = loads_bounded(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)), 4096)
        if not isinstance(header, dict):
            raise ValueError("the JWE header is not a JSON object")
        kid = header.get("kid")
        if kid is None and len(self._decrypting) == 1:
            kid = next(iter(self._decrypting))
        if "zip" in header:  # compressed plaintext: a small token could inflate to megabytes
            raise ValueError("compressed JWEs are not accepted")
        if kid not in self._decrypting or header.get("alg") not in ENC_ALGS:
            raise ValueError("the JWE is not for a key of this broker")
        alg, private = self._decrypting[kid]
        key = self._imported(kid, private, alg, private=True)
        return jwe.decrypt_compact(token, key, algorithms=[*ENC_ALGS, *CONTENT_ENCS]).plaintext or b""

    def verify(self, token: str) -> jwt.Token:
        """Signature check against published keys; claims are the caller's to validate.
        Raises joserfc errors (alg=none and unknown algorithms are refused by the allow-list)."""
        self._refresh()
        return jwt.decode(token, self._public, algorithms=["ES256", "RS256"])


def _view(row: SigningKey) -> KeyView:
    return KeyView(kid=row.kid, alg=row.alg, public_jwk=dict(row.public_jwk),
                   activate_at=aware(row.activate_at),
                   retire_after=aware(row.retire_after) if row.retire_after else None,
                   created_at=aware(row.created_at))


def _view_with(v: KeyView, retire_after: datetime | None) -> KeyView:
    return KeyView(v.kid, v.alg, v.public_jwk, v.activate_at, retire_after, v.created_at)


def _active_kids(views: list[KeyView], now: datetime) -> dict[str, str]:
    """Per algorithm, the most recently activated key whose activation time has come (the newer
    one when two activate at the same moment)."""
    active: dict[str, KeyView] = {}
    for v in views:
        if v.activate_at <= now and (v.alg not in active or (v.activate_at, v.created_at) >=
                                     (active[v.alg].activate_at, active[v.alg].created_at)):
            active[v.alg] = v
    return {alg: v.kid for alg, v in active.items()}
