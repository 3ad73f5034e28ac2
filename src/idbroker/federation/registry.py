"""The configured upstream providers (`idbroker idp ...`), managed like clients: stored in the
database, their secret options encrypted, each built into its kind's class (kinds.py) on demand.

Why in the database and not in settings: providers are added, changed and removed while the
broker runs, by the same command line as clients, and every worker must see the change.

How. A provider is a row of `upstream_providers`: its kind, its shown name, its kind's options in
clear and its secret options (client secret, bind password, a private key) as one JWE (dir,
A256GCM) under a sub-key of the server secret, as the signing keys are (keys/keystore.py). `get`
builds the kind's class with an `UpstreamConfig` (secrets decrypted) and, of the collaborators the
composition root offers (`http`: an HTTP client, `replay`: the store of seen SAML assertion
ids, `issuer`), only those its constructor names; the
instance is kept until the row changes, so what a kind caches (discovery, JWKS, IdP metadata)
lives as long as its configuration.

What is checked when a provider is written: the id is a short lower-case token (it is a path
segment of `{issuer}/idp/{id}/...` and the `idp` claim); the kind is a key of `UPSTREAMS`; a URL
among the options or the logo is https, or http only for a loopback host (development and tests;
ldap:// is left to the LDAP kind, which takes it elsewhere only with StartTLS); domains are bare
lower-case DNS names; and the kind's class is built once, so that its own checks of its options
refuse a bad configuration when it is written rather than at the first sign-in.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from ..security import SecretBox, url_problem
from ..store.db import Database, utcnow
from ..store.models import SeenAssertion, UpstreamProvider
from ..store.rows import fingerprint
from .base import PasswordAuthority, Upstream, UpstreamConfig
from .kinds import UPSTREAMS
from .presets import PRESETS, expand

log = logging.getLogger("idbroker.federation")

ID_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
DOMAIN_RE = re.compile(r"\A(?=.{1,253}\Z)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
SAML_KINDS = frozenset({"saml"})  # kinds whose browser comes back to /acs and that publish /metadata
_ROW = select(UpstreamProvider.__table__).where(UpstreamProvider.__table__.c.id == bindparam("id"))


class InvalidUpstream(ValueError):
    """What is wrong with a provider's configuration, one line."""


class UpstreamNotFound(LookupError):
    pass


def check_url(name: str, value: str) -> None:
    problem = url_problem(name, value)
    if problem:
        raise InvalidUpstream(problem)


def _looks_like_url(value: Any) -> bool:
    return isinstance(value, str) and bool(re.match(r"\A[a-z][a-z0-9+.-]*://", value, re.I))


def redirects(row: UpstreamProvider) -> bool:
    """The provider's kind sends the browser there (a button), rather than taking a password here."""
    return row.kind in UPSTREAMS and hasattr(UPSTREAMS[row.kind], "start")


def redirect_uris(issuer: str, provider_id: str, kind: str) -> dict[str, str]:
    """What the operator registers at the upstream."""
    base = f"{issuer}/idp/{provider_id}"
    if kind in SAML_KINDS:
        return {"acs": base + "/acs", "metadata": base + "/metadata", "slo": base + "/slo"}
    return {"redirect_uri": base + "/callback"}


class UpstreamRegistry:
    """`list` (the sign-in page's buttons, home-realm discovery on every password submission) is
    kept for `cache_seconds`, as the client registry keeps clients: a change made in this process
    is seen at once, one made by another worker or node within `cache_seconds`. `get`, which a
    sign-in through a provider goes by, always reads the provider's row."""

    def __init__(self, db: Database, master_secret: bytes, collaborators: Mapping[str, Any] | None = None,
                 cache_seconds: float = 0):
        self.db = db
        self._secrets = SecretBox(master_secret, "idbroker upstream secrets")
        self.collaborators = dict(collaborators or {})
        self.cache_seconds = cache_seconds
        self._built: dict[str, tuple[str, Upstream | PasswordAuthority]] = {}
        self._listed: tuple[float, tuple[UpstreamProvider, ...]] | None = None
        self._lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------------
    def add(self, provider_id: str, kind: str, name: str, *, options: Mapping[str, Any] | None = None,
            secrets: Mapping[str, str] | None = None, logo_uri: str | None = None, trust_email: bool = False,
            trust_mfa: bool = False, domains: list[str] | None = None) -> UpstreamProvider:
        if not ID_RE.match(provider_id):
            raise InvalidUpstream(f"id {provider_id!r}: lower-case letters, digits, - and _ (at most 64)")
        kind, options = expand(kind, options or {})  # a preset (google, github...) is a kind with defaults
        if kind not in UPSTREAMS:
            raise InvalidUpstream(f"unknown kind {kind!r} (known: {', '.join(sorted(UPSTREAMS) + sorted(PRESETS))})")
        now = utcnow()
        row = UpstreamProvider(id=provider_id, kind=kind, name=name, options={}, secrets=None, logo_uri=None,
                               trust_email=trust_email, trust_mfa=trust_mfa, domains=[], created_at=now,
                               updated_at=now)
        self._apply(row, name=name, options=dict(options or {}), secrets=dict(secrets or {}), logo_uri=logo_uri,
                    domains=domains or [])
        self._check(row)
        with self.db.session() as s:
            if s.get(UpstreamProvider, provider_id) is not None:
                raise InvalidUpstream(f"provider {provider_id!r} already exists")
            s.add(row)
        self._changed()
        return row

    def update(self, provider_id: str, *, name: str | None = None, options: Mapping[str, Any] | None = None,
               secrets: Mapping[str, str] | None = None, logo_uri: str | None = None,
               trust_email: bool | None = None, trust_mfa: bool | None = None,
               domains: list[str] | None = None,
               precondition: Callable[[UpstreamProvider], None] | None = None) -> UpstreamProvider:
        """Options and secrets given are merged into the stored ones (an empty value removes
        one); domains replace the list; logo_uri '' removes it. `precondition(row)` runs on the
        locked row in the writing transaction and may raise (If-Match)."""
        with self.db.session() as s:
            row = s.get(UpstreamProvider, provider_id, with_for_update=precondition is not None)
            if row is None:
                raise UpstreamNotFound(provider_id)
            if precondition is not None:
                precondition(row)
            merged = {**row.options, **(options or {})}
            kept = {**self._secrets.open(row.secrets), **(secrets or {})}
            self._apply(row, name=row.name if name is None else name,
                        options={k: v for k, v in merged.items() if v != ""},
                        secrets={k: v for k, v in kept.items() if v != ""},
                        logo_uri=row.logo_uri if logo_uri is None else (logo_uri or None),
                        domains=row.domains if domains is None else domains)
            if trust_email is not None:
                row.trust_email = trust_email
            if trust_mfa is not None:
                row.trust_mfa = trust_mfa
            self._check(row)
            row.updated_at = utcnow()
        self._changed()
        return row

    def remove(self, provider_id: str,
               precondition: Callable[[UpstreamProvider], None] | None = None) -> None:
        """The provider and, with it, every link to it (ON DELETE CASCADE). `precondition`: as
        for update."""
        with self.db.session() as s:
            if precondition is not None:
                row = s.get(UpstreamProvider, provider_id, with_for_update=True)
                if row is None:
                    raise UpstreamNotFound(provider_id)
                precondition(row)
            if not s.execute(delete(UpstreamProvider).where(UpstreamProvider.id == provider_id)).rowcount:
                raise UpstreamNotFound(provider_id)
        self._changed()
        with self._lock:
            self._built.pop(provider_id, None)

    def _apply(self, row: UpstreamProvider, *, name: str, options: dict[str, Any], secrets: dict[str, str],
               logo_uri: str | None, domains: list[str]) -> None:
        if not name.strip():
            raise InvalidUpstream("name: the name shown on the sign-in button is required")
        for key, value in options.items():
            if _looks_like_url(value):
                check_url(key, value)
        if logo_uri:
            check_url("logo_uri", logo_uri)
        both = set(options) & set(secrets)
        if both:
            raise InvalidUpstream(f"{', '.join(sorted(both))}: given both as an option and as a secret")
        cleaned = [d.strip().lower().rstrip(".") for d in domains]
        for domain in cleaned:
            if not DOMAIN_RE.match(domain):
                raise InvalidUpstream(f"domain {domain!r} is not a DNS name")
        row.name, row.options, row.logo_uri, row.domains = name.strip(), options, logo_uri, cleaned
        row.secrets = self._secrets.seal(secrets)

    # -- reads ------------------------------------------------------------------------------------
    def list(self) -> list[UpstreamProvider]:
        listed = self._listed
        if listed is not None and time.monotonic() - listed[0] < self.cache_seconds:
            return list(listed[1])
        read_at = time.monotonic()
        with self.db.session(write=False) as s:
            rows = tuple(s.scalars(select(UpstreamProvider).order_by(UpstreamProvider.id)))
        self._listed = (read_at, rows)
        return list(rows)

    def _changed(self) -> None:
        """A write in this process: the next `list` reads the table again."""
        self._listed = None

    def row(self, provider_id: str) -> UpstreamProvider | None:
        """The provider's row as it is now (read-only: no session holds it). A plain Core read, since
        every sign-in through a provider makes it (an ORM session's get costs ~5 times as much)."""
        if not ID_RE.match(provider_id or ""):
            return None
        with self.db.reads.connect() as conn:
            found = conn.execute(_ROW, {"id": provider_id}).first()
        return UpstreamProvider(**found._asdict()) if found is not None else None

    def secret_names(self, row: UpstreamProvider) -> list[str]:
        return sorted(self._secrets.open(row.secrets))

    def config(self, row: UpstreamProvider) -> UpstreamConfig:
        return UpstreamConfig(id=row.id, kind=row.kind, name=row.name,
                              options={**row.options, **self._secrets.open(row.secrets)},
                              trust_email=row.trust_email, trust_mfa=row.trust_mfa, domains=tuple(row.domains))

    def get(self, provider_id: str) -> tuple[UpstreamProvider, Upstream | PasswordAuthority] | None:
        """The provider's row and its built class, or None (unknown id, or a kind no longer known)."""
        row = self.row(provider_id)
        if row is None or row.kind not in UPSTREAMS:
            return None
        with self._lock:
            built = self._built.get(row.id)
            version = fingerprint(row)
            if built is None or built[0] != version:
                try:
                    built = (version, self._build(row))
                except (ValueError, KeyError, TypeError):  # configured before its kind checked this
                    log.exception("upstream provider %s cannot be built", row.id)
                    return None
                self._built[row.id] = built
        return row, built[1]

    def buttons(self) -> list[UpstreamProvider]:
        """The providers the sign-in page offers a button for: those the browser is sent to."""
        return [r for r in self.list() if redirects(r)]

    def for_domain(self, email: str) -> UpstreamProvider | None:
        """Home-realm discovery: the provider whose domains hold the address's domain."""
        domain = email.rpartition("@")[2].strip().lower()
        if not domain:
            return None
        return next((r for r in self.list() if domain in r.domains), None)

    def _check(self, row: UpstreamProvider) -> None:
        """The kind's own checks of its options, which its class makes when built."""
        try:
            self._build(row)
        except KeyError as exc:
            raise InvalidUpstream(f"{row.kind}: the option {exc} is required") from None
        except (ValueError, TypeError) as exc:
            raise InvalidUpstream(f"{row.kind}: {exc}") from None

    def _build(self, row: UpstreamProvider) -> Upstream | PasswordAuthority:
        cls = UPSTREAMS[row.kind]
        wanted = list(inspect.signature(cls).parameters.values())[1:]
        given = {p.name: made(self.collaborators[p.name]) for p in wanted if p.name in self.collaborators}
        return cls(self.config(row), **given)  # type: ignore[call-arg]


class OnFirstUse:
    """A collaborator made when the first provider that takes it is built (provider.py: the HTTP
    client, which a broker without upstream providers never makes)."""

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._lock = threading.Lock()
        self._made: list[Any] = []

    def get(self) -> Any:
        with self._lock:
            if not self._made:
                self._made.append(self._make())
        return self._made[0]


def made(collaborator: Any) -> Any:
    return collaborator.get() if isinstance(collaborator, OnFirstUse) else collaborator


class SeenAssertions:
    """The replay store of SAML assertion ids, shared by every worker and node through the
    database (the primary key makes the first insert win); store/housekeeping.py purges them."""

    def __init__(self, db: Database):
        self.db = db

    def seen(self, assertion_id: str, until: float) -> bool:
        """True when `assertion_id` was presented before; else remembers it until `until` (epoch
        seconds) and answers False."""
        try:
            with self.db.session() as s:
                s.execute(insert(SeenAssertion).values(id=assertion_id[:255],
                                                       expires_at=datetime.fromtimestamp(until, UTC)))
        except IntegrityError:
            return True
        return False
