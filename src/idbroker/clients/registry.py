"""The client registry: create, read (cached per worker), update and remove clients."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, update

from ..oauth2 import constants as c
from ..security import KeyedHasher, random_token
from ..store.db import Database, utcnow
from ..store.models import Client, Grant
from .metadata import ClientMetadata, InvalidClientMetadata
from .sector import Fetch, check_sector, fetch_json

FIELDS = [f.name for f in dataclasses.fields(ClientMetadata)]


class ClientExists(ValueError):
    pass


class ClientNotFound(LookupError):
    pass


class ClientRegistry:
    def __init__(self, db: Database, hasher: KeyedHasher, cache_seconds: int = 5, fetch: Fetch = fetch_json):
        self.fetch = fetch  # reads sector_identifier_uri documents
        self.db = db
        self.hasher = hasher
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Client | None]] = {}
        self._lock = threading.Lock()

    def create(self, meta: ClientMetadata, extra: dict[str, Any] | None = None) -> tuple[Client, str | None]:
        """Registers a client. Returns it and, for confidential clients, the secret (shown once).
        `extra`: columns outside the metadata (dynamic registration's, clients/registration.py)."""
        meta.validate()
        self._check_sector(meta, None)
        secret = None
        if meta.token_endpoint_auth_method in (c.AUTH_BASIC, c.AUTH_POST):
            secret = random_token(32)
        now = utcnow()
        with self.db.session() as s:
            if s.get(Client, meta.client_id) is not None:
                raise ClientExists(f"client {meta.client_id!r} already exists")
            row = Client(**dataclasses.asdict(meta), secret_hash=self.hasher.hash(secret) if secret else None,
                         created_at=now, updated_at=now, **(extra or {}))
            s.add(row)
        self.forget(meta.client_id)
        return row, secret

    def update(self, client_id: str, changes: dict[str, Any], *, new_secret: bool = False,
               extra: dict[str, Any] | None = None, precondition: Callable[[Client], None] | None = None
               ) -> tuple[Client, str | None]:
        """`precondition(row)` runs on the locked row in the transaction and may raise (If-Match)."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise InvalidClientMetadata([f"unknown client field {u!r}" for u in sorted(unknown)])
        with self.db.session() as s:
            row = s.get(Client, client_id, with_for_update=precondition is not None)
            if row is None:
                raise ClientNotFound(client_id)
            if precondition is not None:
                precondition(row)
            meta = metadata_of(row)
            for key, value in changes.items():
                setattr(meta, key, value)
            before = metadata_of(row)
            meta.validate()
            self._check_sector(meta, before)
            for key in FIELDS:
                setattr(row, key, getattr(meta, key))
            for key, value in (extra or {}).items():
                setattr(row, key, value)
            secret = None
            confidential = meta.token_endpoint_auth_method in (c.AUTH_BASIC, c.AUTH_POST)
            if confidential and (new_secret or not row.secret_hash):
                secret = random_token(32)
                row.secret_hash = self.hasher.hash(secret)
            elif not confidential:
                row.secret_hash = None
            row.updated_at = utcnow()
        self.forget(client_id)
        return row, secret

    def _check_sector(self, meta: ClientMetadata, before: ClientMetadata | None) -> None:
        """OIDC Registration §5: every redirect URI listed at the sector_identifier_uri, fetched
        when it or the redirect URIs are new."""
        uri = meta.sector_identifier_uri
        if not uri or (before is not None and before.sector_identifier_uri == uri
                       and before.redirect_uris == meta.redirect_uris):
            return
        problems = check_sector(uri, meta.redirect_uris, self.fetch)
        if problems:
            raise InvalidClientMetadata(problems)

    def remove(self, client_id: str, precondition: Callable[[Client], None] | None = None) -> None:
        """Deletes the client and (by the foreign keys) its grants. The grants are revoked first, in
        the same transaction: a cascade is invisible to the change counter (store/changes.py), so
        workers would go on answering from cached token states. `precondition`: as for update."""
        with self.db.session() as s:
            if precondition is not None:
                row = s.get(Client, client_id, with_for_update=True)
                if row is None:
                    raise ClientNotFound(client_id)
                precondition(row)
            s.execute(update(Grant).where(Grant.client_id == client_id, Grant.revoked_at.is_(None))
                      .values(revoked_at=utcnow()))
            if s.execute(delete(Client).where(Client.client_id == client_id)).rowcount == 0:
                raise ClientNotFound(client_id)
        self.forget(client_id)

    def list(self) -> list[Client]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(Client).order_by(Client.client_id)))

    def get(self, client_id: str) -> Client | None:
        """Cached lookup used on every request; at most `cache_seconds` stale across workers."""
        if "\x00" in client_id or len(client_id) > 255:
            return None  # cannot be registered; PostgreSQL refuses NUL in text
        now = time.monotonic()
        hit = self._cache.get(client_id)
        if hit and now - hit[0] < self.cache_seconds:
            return hit[1]
        with self.db.session(write=False) as s:
            row = s.get(Client, client_id)
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[client_id] = (now, row)
        return row

    def forget(self, client_id: str) -> None:
        self._cache.pop(client_id, None)

    def verify_secret(self, client: Client, secret: str) -> bool:
        return self.hasher.verify(secret, client.secret_hash)


def metadata_of(row: Client) -> ClientMetadata:
    return ClientMetadata(**{name: _copy(getattr(row, name)) for name in FIELDS})


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
