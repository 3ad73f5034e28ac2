"""The migration-source interface and the table of kinds (`SOURCES`).

A migration source is a legacy user store asked, in the operator's order, when a sign-in or a
forgot-password names an address that no local account has (lazy migration, lazy.py). On success
the user is created locally from what the source returned, with the just-typed password hashed
with argon2id, and that source is never asked about the user again.

- ``verify(login, password)``: the legacy system checks the password. A `LegacyUser` when it is
  right; None when the login is unknown or the password wrong - the two are one answer, so the
  sign-in page cannot tell them apart from a local wrong password.
- ``lookup(login)``: for forgot-password: the user's attributes without a password, or None.
- Either raises `SourceUnavailable` when the source cannot be asked (down, slow, garbage): the user
  sees "try again later", nothing is created, the attempt still counts against the sign-in
  throttle (a source must not become a password oracle that bypasses lockout).

Each kind (cognito, webhook, ldap) is one class in this package and one entry in `SOURCES`,
built with a `SourceConfig` (its stored options, secrets decrypted); `secret_options` names the
options stored encrypted (sources.py). `verify` and `lookup` block (network round trips with
timeouts): callers run them in a worker thread. Never log the password.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from .cognito import CognitoSource
from .ldap_bind import LdapSource
from .legacy import LegacyUser, SourceConfig, SourceUnavailable
from .webhook import WebhookSource

__all__ = ["SOURCES", "LegacyUser", "MigrationSource", "SourceConfig", "SourceUnavailable"]


class MigrationSource(Protocol):
    kind: ClassVar[str]
    secret_options: ClassVar[tuple[str, ...]]

    def verify(self, login: str, password: str) -> LegacyUser | None: ...

    def lookup(self, login: str) -> LegacyUser | None: ...


# kind -> the class implementing it.
SOURCES: dict[str, type[MigrationSource]] = {
    "cognito": CognitoSource,
    "webhook": WebhookSource,
    "ldap": LdapSource,
}
