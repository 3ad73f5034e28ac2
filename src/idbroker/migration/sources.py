"""The configured migration sources (`idbroker sources ...`), like the upstream providers
(federation/registry.py): rows of `migration_sources` in the database, the options a kind names
secret (`secret_options`) kept as one JWE (dir, A256GCM) under a sub-key of the server secret,
each row built into its kind's class (base.py `SOURCES`) on demand and kept until the row changes.

Why in the database: sources are added, reordered and switched off while the broker runs, and
every worker must see the change. Order: `position` 1..N, asked in that order; `add` appends
unless given a position, `update --position N` moves one and renumbers the others.

What is checked when a source is written: the id is a short lower-case token; the kind is a key
of `SOURCES`; a URL among the options is https (http only for a loopback host; ldap:// is the
LDAP kind's to judge, as for upstreams); and the kind's class is built once, so that its own
checks refuse a bad configuration when it is written rather than at the first sign-in.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select

from ..security import SecretBox, url_problem
from ..store.db import Database, utcnow
from ..store.models import LegacySource
from ..store.rows import fingerprint
from .base import SOURCES, MigrationSource
from .legacy import SourceConfig

log = logging.getLogger("idbroker.migration")

ID_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")


class InvalidSource(ValueError):
    """What is wrong with a source's configuration, one line."""


class SourceNotFound(LookupError):
    pass


def check_url(name: str, value: str) -> None:
    problem = url_problem(name, value)
    if problem:
        raise InvalidSource(problem)


class SourceRegistry:
    def __init__(self, db: Database, master_secret: bytes):
        self.db = db
        self._secrets = SecretBox(master_secret, "idbroker migration source secrets")
        self._built: dict[str, tuple[str, MigrationSource]] = {}
        self._lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------------
    def add(self, source_id: str, kind: str, options: Mapping[str, Any] | None = None, *,
            position: int | None = None, enabled: bool = True) -> LegacySource:
        if not ID_RE.match(source_id):
            raise InvalidSource(f"id {source_id!r}: lower-case letters, digits, - and _ (at most 64)")
        if kind not in SOURCES:
            raise InvalidSource(f"unknown kind {kind!r} (known: {', '.join(sorted(SOURCES))})")
        now = utcnow()
        row = LegacySource(id=source_id, kind=kind, position=0, options={}, secrets=None, enabled=enabled,
                           created_at=now, updated_at=now)
        self._apply(row, {k: v for k, v in dict(options or {}).items() if v != ""})
        with self.db.session() as s:
            if s.get(LegacySource, source_id) is not None:
                raise InvalidSource(f"source {source_id!r} already exists")
            rows = list(s.scalars(select(LegacySource).order_by(LegacySource.position, LegacySource.id)))
            s.add(row)
            self._place(rows, row, position)
        return row

    def update(self, source_id: str, options: Mapping[str, Any] | None = None, *, position: int | None = None,
               enabled: bool | None = None, precondition: Callable[[LegacySource], None] | None = None
               ) -> LegacySource:
        """Options given are merged into the stored ones (an empty value removes one).
        `precondition(row)` runs on the locked row in the writing transaction and may raise (If-Match)."""
        with self.db.session() as s:
            query = select(LegacySource).order_by(LegacySource.position, LegacySource.id)
            rows = list(s.scalars(query.with_for_update() if precondition else query))
            row = next((r for r in rows if r.id == source_id), None)
            if row is None:
                raise SourceNotFound(source_id)
            if precondition is not None:
                precondition(row)
            if options:
                merged = {**row.options, **self._secrets.open(row.secrets), **options}
                self._apply(row, {k: v for k, v in merged.items() if v != ""})
            if enabled is not None:
                row.enabled = enabled
            if position is not None:
                self._place([r for r in rows if r is not row], row, position)
            row.updated_at = utcnow()
        return row

    def remove(self, source_id: str, precondition: Callable[[LegacySource], None] | None = None) -> None:
        """`precondition`: as for update."""
        with self.db.session() as s:
            query = select(LegacySource).order_by(LegacySource.position, LegacySource.id)
            rows = list(s.scalars(query.with_for_update() if precondition else query))
            row = next((r for r in rows if r.id == source_id), None)
            if row is None:
                raise SourceNotFound(source_id)
            if precondition is not None:
                precondition(row)
            s.delete(row)
            for number, other in enumerate((r for r in rows if r is not row), start=1):
                other.position = number
        with self._lock:
            self._built.pop(source_id, None)

    @staticmethod
    def _place(others: list[LegacySource], row: LegacySource, position: int | None) -> None:
        if position is not None and position < 1:
            raise InvalidSource("position: 1 is the first source asked")
        index = len(others) if position is None else min(position - 1, len(others))
        ordered = others[:index] + [row] + others[index:]
        for number, r in enumerate(ordered, start=1):
            r.position = number

    def _apply(self, row: LegacySource, options: dict[str, Any]) -> None:
        for key, value in options.items():
            if isinstance(value, str) and re.match(r"\A[a-z][a-z0-9+.-]*://", value, re.I):
                check_url(key, value)
        secret_names = set(SOURCES[row.kind].secret_options)
        secrets = {k: str(v) for k, v in options.items() if k in secret_names}
        row.options = {k: v for k, v in options.items() if k not in secret_names}
        row.secrets = self._secrets.seal(secrets)
        try:
            self._build(row)
        except KeyError as exc:
            raise InvalidSource(f"{row.kind}: the option {exc} is required") from None
        except (ValueError, TypeError) as exc:
            raise InvalidSource(f"{row.kind}: {exc}") from None

    # -- reads ------------------------------------------------------------------------------------
    def list(self) -> list[LegacySource]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(LegacySource).order_by(LegacySource.position, LegacySource.id)))

    def row(self, source_id: str) -> LegacySource | None:
        if not ID_RE.match(source_id or ""):
            return None
        with self.db.session(write=False) as s:
            return s.get(LegacySource, source_id)

    def secret_names(self, row: LegacySource) -> list[str]:
        return sorted(self._secrets.open(row.secrets))

    def enabled(self) -> list[tuple[str, MigrationSource]]:
        """(id, built source) of the enabled sources, in the order they are asked."""
        out = []
        for row in self.list():
            if not row.enabled or row.kind not in SOURCES:
                continue
            with self._lock:
                built = self._built.get(row.id)
                version = fingerprint(row)
                if built is None or built[0] != version:
                    try:
                        built = (version, self._build(row))
                    except (ValueError, KeyError, TypeError):  # configured before its kind checked this
                        log.exception("migration source %s cannot be built", row.id)
                        continue
                    self._built[row.id] = built
            out.append((row.id, built[1]))
        return out

    def _build(self, row: LegacySource) -> MigrationSource:
        config = SourceConfig(id=row.id, kind=row.kind, options={**row.options, **self._secrets.open(row.secrets)})
        return SOURCES[row.kind](config)  # type: ignore[call-arg]
