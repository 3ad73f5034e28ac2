"""LDAP / Active Directory as a password authority (kind ``ldap``).

Companies keep their people in a directory and want them to sign in with the password they
already have, typed on our own sign-in page. The directory never tells anyone whether a password
is right except by letting them bind with it, so that is the one check: a service account finds
the user's entry, then the typed password is used to bind as that entry (never a compare of
hashes, which would need read access to the hashes and would miss lockout and expiry rules the
directory enforces on binds).

How one sign-in goes:

1. Refused before any network traffic: an empty password. A simple bind with a DN and an empty
   password is an *unauthenticated* bind, which servers answer with success (RFC 4513 §5.1.2), so
   letting it through would sign anyone in as anyone.
2. Search, as the service account, under ``base_dn`` with ``user_filter`` where ``{login}`` is the
   typed login escaped as an assertion value (RFC 4515 §3: ``*``, ``(``, ``)``, ``\\`` and NUL), so
   a login such as ``*)(uid=*`` matches nothing instead of everything. Exactly one entry must
   match: none is an unknown user, two or more is an ambiguous filter (logged, refused). Search
   continuation references (Active Directory's DomainDnsZones and friends, RFC 4511 §4.5.3) are
   ignored, never chased.
3. Bind as the found DN with the typed password, on a connection of its own. invalidCredentials
   (code 49, RFC 4511 Appendix A.2; Active Directory also uses it for locked, disabled and expired
   accounts) is a wrong password: None, the same answer as an unknown user.
4. The user's groups, as the service account, by ``group_mode``:
   ``memberOf`` - the entry's memberOf values (direct memberships; what AD and the OpenLDAP memberof
   overlay keep); ``in_chain`` - Active Directory's transitive match, one search for
   ``(member:1.2.840.113556.1.4.1941:=<user DN>)`` under ``group_base_dn`` (nested groups included);
   ``groupOfNames`` - searches under ``group_base_dn`` for entries whose ``member`` or
   ``uniqueMember`` is the user, then those groups, level by level (nested groups resolved here,
   cycles and depth bounded), for directories with neither. Groups are released by the value of
   their DN's first RDN (the CN).

The identity's subject is the entry's permanent id: ``entryUUID`` (RFC 4530) or Active Directory's
``objectGUID``, else the DN (which changes on rename). The email is never called verified unless
the operator says the directory's ``mail`` is (option ``email_verified``); whether a verified
email may link to an existing account is a separate decision (`UpstreamConfig.trust_email`).

Transport: ``ldaps://``, or ``ldap://`` with ``start_tls`` (RFC 4513 §3), certificates verified
(``ca_file`` for a private CA); plain ``ldap://`` only to a loopback host. The service connection
is reused across sign-ins, one at a time behind a lock, and opened again once if it went stale (a
directory restart, an idle timeout); user binds use a short-lived connection. Every connect and
every answer waits at most ``timeout`` seconds. A directory that cannot be reached, is slow,
refuses the service account or answers with an error raises `UpstreamUnavailable` ("try again
later", the reason in the log). Passwords are never logged nor put in an error. `authenticate`
blocks (at most a few round trips): callers run it in a worker thread.

Options: ``url``, ``start_tls``, ``ca_file``, ``bind_dn``, ``bind_password`` (the secret),
``base_dn``, ``user_filter``, ``group_base_dn``, ``group_mode``, ``claims`` ({claim: attribute},
over `DEFAULT_CLAIMS`), ``email_verified``, ``timeout``.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
import threading
import uuid
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from ..security import is_loopback_host
from .base import UNAVAILABLE, ExternalIdentity, UpstreamConfig, UpstreamUnavailable

if TYPE_CHECKING:
    from ldap3 import NONE, SUBTREE, Connection, Server, Tls
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import parse_dn

LDAP3_NAMES = ("NONE", "SUBTREE", "Connection", "Server", "Tls", "LDAPException", "escape_filter_chars", "parse_dn")


def load_ldap3() -> None:
    """ldap3 (and pyasn1) imported on first use - when an LDAP authority is built - not when a
    worker starts, which most deployments never need (tests/unit/test_import_weight.py). The names
    become this module's globals, so the code below uses them as if imported at the top."""
    global NONE, SUBTREE, Connection, Server, Tls, LDAPException, escape_filter_chars, parse_dn
    if "parse_dn" in globals():
        return
    with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 0.6 deprecated (tagMap, typeMap)
        warnings.simplefilter("ignore", DeprecationWarning)
        from ldap3 import NONE, SUBTREE, Connection, Server, Tls
        from ldap3.core.exceptions import LDAPException
        from ldap3.utils.conv import escape_filter_chars
        from ldap3.utils.dn import parse_dn


def __getattr__(name: str) -> Any:
    """`from idbroker.federation.ldap import Connection` (the tests' slapd helper) loads ldap3 too."""
    if name in LDAP3_NAMES:
        load_ldap3()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

log = logging.getLogger("idbroker.federation")

# The same words as the other kinds' (federation/saml.py): one entry in the catalogs.
DEFAULT_USER_FILTER = "(|(uid={login})(mail={login}))"
DEFAULT_TIMEOUT = 5.0  # seconds, for a connect and for each answer
GROUP_MODES = ("memberOf", "in_chain", "groupOfNames")
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS §3.1.1.3.4.4)
MAX_NESTING = 16  # groupOfNames levels followed; deeper nesting is cut there
INVALID_CREDENTIALS = 49
SIZE_LIMIT_EXCEEDED = 4
# Claim (OIDC Core §5.1) -> the attributes that may hold it, first present wins; `claims` overrides.
DEFAULT_CLAIMS: dict[str, tuple[str, ...]] = {
    "preferred_username": ("uid", "sAMAccountName", "userPrincipalName"),
    "name": ("displayName", "cn"),
    "given_name": ("givenName",),
    "family_name": ("sn",),
}
ID_ATTRIBUTES = ("entryUUID", "objectGUID")


def _flag(value: Any) -> bool:
    """An option that may come as text from the CLI: "false" must not be true."""
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def _first_rdn_value(dn: str) -> str:
    """The unescaped value of a DN's first RDN (RFC 4514 §2.4): ``cn=R\\2cD,ou=g`` -> ``R,D``."""
    load_ldap3()
    try:
        value = parse_dn(dn)[0][1]
    except (LDAPException, IndexError):
        return dn
    raw = re.sub(rb"\\([0-9a-fA-F]{2}|.)",
                 lambda m: bytes.fromhex(m[1].decode()) if len(m[1]) == 2 else m[1], value.encode())
    return raw.decode(errors="replace")


class LdapAuthority:
    kind: ClassVar[str] = "ldap"

    def __init__(self, config: UpstreamConfig):
        load_ldap3()
        o = config.options
        parts = urlsplit(str(o.get("url") or ""))
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError("url must be ldap://host[:port] or ldaps://host[:port]")
        self.start_tls = _flag(o.get("start_tls"))
        if parts.scheme == "ldap" and not self.start_tls and not is_loopback_host(parts.hostname):
            raise ValueError("ldap:// is only for loopback hosts: use ldaps:// or start_tls")
        for name in ("bind_dn", "bind_password", "base_dn"):
            if not o.get(name):
                raise ValueError(f"{name} is required")
        self.user_filter = str(o.get("user_filter") or DEFAULT_USER_FILTER)
        if "{login}" not in self.user_filter:
            raise ValueError("user_filter must contain {login}")
        self.group_mode = str(o.get("group_mode") or "memberOf")
        if self.group_mode not in GROUP_MODES:
            raise ValueError(f"group_mode must be one of {', '.join(GROUP_MODES)}")
        self.provider_id = config.id
        self.bind_dn = str(o["bind_dn"])
        self._bind_password = str(o["bind_password"])
        self.base_dn = str(o["base_dn"])
        self.group_base_dn = str(o.get("group_base_dn") or self.base_dn)
        self.email_verified = _flag(o.get("email_verified"))
        self.timeout = float(o.get("timeout") or DEFAULT_TIMEOUT)
        self.claims = {**DEFAULT_CLAIMS, **{claim: (str(attr),) for claim, attr in dict(o.get("claims") or {}).items()}}
        self.attributes = sorted({a for attrs in self.claims.values() for a in attrs}
                                 | {"mail", "memberOf", *ID_ATTRIBUTES})
        use_ssl = parts.scheme == "ldaps"
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=o.get("ca_file") or None) \
            if use_ssl or self.start_tls else None
        self.server = Server(parts.hostname, port=parts.port or (636 if use_ssl else 389), use_ssl=use_ssl, tls=tls,
                             get_info=NONE, connect_timeout=self.timeout)
        self._service: Connection | None = None
        self._lock = threading.Lock()

    # -- the PasswordAuthority protocol -------------------------------------------------------------
    def authenticate(self, login: str, password: str) -> ExternalIdentity | None:
        if not login or not password:  # RFC 4513 §5.1.2: an empty password binds unauthenticated
            return None
        filter_ = self.user_filter.replace("{login}", escape_filter_chars(login))
        entries = self._as_service(lambda conn: self._search(conn, self.base_dn, filter_, self.attributes, 2))
        if len(entries) != 1:
            if entries:
                log.warning("ldap %s: the user filter matched %d entries; refused", self.provider_id, len(entries))
            return None
        entry = entries[0]
        if not self._bind_as(entry["dn"], password):
            return None
        groups = self._as_service(lambda conn: self._groups(conn, entry))
        return self._identity(entry, groups)

    # -- connections ----------------------------------------------------------------------------------
    def _connect(self, user: str, password: str) -> tuple[Connection, bool]:
        """A connection bound as `user`, and whether the bind was accepted."""
        conn = Connection(self.server, user=user, password=password, auto_bind=False, auto_referrals=False,
                          read_only=True, receive_timeout=math.ceil(self.timeout), raise_exceptions=False)
        self.server.reset_availability()  # ldap3 would skip an address that failed in the last 5 s
        conn.open()
        if self.start_tls and not conn.start_tls():
            conn.unbind()
            raise self._unavailable(f"StartTLS refused: {conn.result.get('description')}")
        return conn, conn.bind()

    def _as_service(self, work: Any) -> Any:
        """`work(conn)` on the shared service connection; a stale one is replaced once."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._service is None
                try:
                    if self._service is None:
                        conn, bound = self._connect(self.bind_dn, self._bind_password)
                        if not bound:
                            result = conn.result
                            conn.unbind()
                            raise self._unavailable(f"the service account {self.bind_dn} could not bind: "
                                                    f"{result.get('description')}")
                        self._service = conn
                    return work(self._service)
                except LDAPException as exc:
                    self._drop_service()
                    if fresh or attempt == 2:
                        raise self._unavailable(f"{type(exc).__name__}: {exc}") from None
                except UpstreamUnavailable:
                    self._drop_service()
                    raise
        raise AssertionError("unreachable")

    def _drop_service(self) -> None:
        conn, self._service = self._service, None
        if conn is not None:
            try:
                conn.unbind()
            except LDAPException:
                pass

    def _bind_as(self, dn: str, password: str) -> bool:
        try:
            conn, bound = self._connect(dn, password)
        except LDAPException as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from None
        code, description = conn.result.get("result"), conn.result.get("description")
        try:
            conn.unbind()
        except LDAPException:
            pass
        if bound:
            return True
        if code == INVALID_CREDENTIALS:
            log.info("ldap %s: bind refused for %s", self.provider_id, dn)
            return False
        raise self._unavailable(f"the user bind failed: {description}")

    def _unavailable(self, reason: str) -> UpstreamUnavailable:
        detail = f"ldap {self.provider_id}: {reason}"
        log.warning("%s", detail)
        return UpstreamUnavailable(UNAVAILABLE, detail)

    # -- searches -------------------------------------------------------------------------------------
    def _search(self, conn: Connection, base: str, filter_: str, attributes: Any, size_limit: int = 0) -> list[dict]:
        conn.search(base, filter_, search_scope=SUBTREE, attributes=attributes, size_limit=size_limit,
                    time_limit=math.ceil(self.timeout))
        code = conn.result.get("result")
        if code not in (0, SIZE_LIMIT_EXCEEDED):
            raise self._unavailable(f"search under {base} failed: {conn.result.get('description')} "
                                    f"{conn.result.get('message')}")
        return [e for e in conn.response or () if e.get("type") == "searchResEntry"]

    def _groups(self, conn: Connection, entry: dict) -> list[str]:
        if self.group_mode == "memberOf":
            return list(entry["attributes"].get("memberOf") or ())
        user = escape_filter_chars(entry["dn"])
        if self.group_mode == "in_chain":
            return [e["dn"] for e in self._search(conn, self.group_base_dn, f"(member:{IN_CHAIN}:={user})", ["1.1"])]
        found: dict[str, str] = {}  # normalized DN -> DN
        level = [entry["dn"]]
        for _ in range(MAX_NESTING):
            members = "".join(f"(member={d})(uniqueMember={d})" for d in map(escape_filter_chars, level))
            hits = self._search(conn, self.group_base_dn, f"(|{members})", ["1.1"])
            level = [e["dn"] for e in hits if e["dn"].lower() not in found]
            found.update((dn.lower(), dn) for dn in level)
            if not level:
                break
        return list(found.values())

    def _identity(self, entry: dict, group_dns: list[str]) -> ExternalIdentity:
        attributes: Mapping[str, Any] = entry["attributes"]

        def first(name: str) -> str | None:
            values = attributes.get(name)
            if isinstance(values, list):
                values = values[0] if values else None
            return str(values) if values not in (None, "") else None

        guid = (entry.get("raw_attributes") or {}).get("objectGUID") or []
        subject = first("entryUUID") or (str(uuid.UUID(bytes_le=guid[0])) if guid else entry["dn"])
        claims = {claim: value for claim, attrs in self.claims.items()
                  if (value := next(filter(None, map(first, attrs)), None)) is not None}
        email = first("mail")
        return ExternalIdentity(provider_id=self.provider_id, subject=subject, email=email,
                                email_verified=bool(email) and self.email_verified, claims=claims,
                                groups=tuple(sorted({_first_rdn_value(dn) for dn in group_dns})),
                                groups_asserted=True)  # the directory was asked: its answer is the truth
