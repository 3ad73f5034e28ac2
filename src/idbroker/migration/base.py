"""The migration-source interface and the table of kinds (`SOURCES`).

A migration source is a legacy user store asked, in the operator's order, when a sign-in or a
forgot-password names an address that no local account has (lazy migration). On success the user
is created locally from what the source returned, with the just-typed password hashed with
argon2id, and that source is never asked about the user again.

- ``verify(login, password)``: the legacy system checks the password. A `LegacyUser` when it is
  right; None when the login is unknown or the password wrong - the two are one answer, so the
  sign-in page cannot tell them apart from a local wrong password.
- ``lookup(login)``: for forgot-password: the user's attributes without a password, or None.
- Either raises `SourceUnavailable` when the source cannot be asked (down, slow, garbage): the user
  sees "try again later", nothing is created, the attempt still counts against the sign-in
  throttle (a source must not become a password oracle that bypasses lockout).

Each kind (cognito, webhook, ldap) is one class in this package and one entry in `SOURCES`,
built with its stored options and the collaborators it uses. Never log the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


class SourceUnavailable(Exception):
    """The source could not answer; `detail` is for the log and the audit event only."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class LegacyUser:
    email: str
    email_verified: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict)   # profile claims (OIDC Core §5.1 names)
    groups: tuple[str, ...] = ()
    custom_attributes: Mapping[str, Any] = field(default_factory=dict)
    must_change_password: bool = False   # e.g. Cognito's NEW_PASSWORD_REQUIRED


class MigrationSource(Protocol):
    kind: ClassVar[str]

    def verify(self, login: str, password: str) -> LegacyUser | None: ...

    def lookup(self, login: str) -> LegacyUser | None: ...


# kind -> the class implementing it. Filled by the migration work: "cognito", "webhook", "ldap".
SOURCES: dict[str, type[MigrationSource]] = {}
