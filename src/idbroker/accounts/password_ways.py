"""Who an email and a password typed on our own sign-in page belong to: the ways of checking a
typed password, asked in order until one of them answers.

1. a password authority whose domains hold the address (home-realm discovery: LDAP / Active
   Directory, federation/ldap.py) - the directory answers, the local pool is not asked;
2. the local pool (accounts/users.py), when an account has that address;
3. the migration sources, in the operator's order, when no local account has it (lazy migration,
   migration/) - a source that knows the user creates the local account.

Each way is one small class with `authenticate(login, password)`, returning a `PasswordOutcome`
when the login is its own, or None to let the next way answer. The last answer, when no way
claims the login, is a wrong password, which takes the same time as a local one.

The caller (pages/protection.py) throttles before asking and records the outcome; the door
(flow/door.py) signs the user in; the provider (provider.py) puts the ways in order. A way never
signs in, never counts attempts and never logs the password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..store.models import User
    from .users import UserService


@dataclass(frozen=True)
class PasswordOutcome:
    """`user`: the local account signed in, None for a wrong login or password. `unavailable`: a
    message id when the way could not be asked (a directory or legacy source down, slow, answering
    garbage) - the user sees it, and the attempt counts as a failure. `refused`: a message id when
    the password was right but the sign-in cannot go on (e.g. an account-takeover link refused).
    `idp`, `amr`, `acr`: what the session records (a directory sign-in is `pwd` + `fed`).
    `detail`: for the audit event."""

    user: User | None
    amr: tuple[str, ...] = ("pwd",)
    acr: str | None = None
    idp: str | None = None
    method: str = "pwd"
    unavailable: str | None = None
    refused: str | None = None
    refused_params: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


WRONG = PasswordOutcome(None)


class PasswordWay(Protocol):
    def authenticate(self, login: str, password: str) -> PasswordOutcome | None:
        """The outcome when `login` is this way's to answer; None to ask the next way."""
        ...


class LocalAccounts:
    """The local pool: answers for every address that has an account."""

    def __init__(self, users: UserService):
        self.users = users

    def authenticate(self, login: str, password: str) -> PasswordOutcome | None:
        user, known = self.users.check(login, password)
        if not known:
            return None
        return PasswordOutcome(user)


class PasswordSignIn:
    def __init__(self, ways: Sequence[PasswordWay]):
        self.ways = list(ways)

    def authenticate(self, login: str, password: str) -> PasswordOutcome:
        for way in self.ways:
            outcome = way.authenticate(login, password)
            if outcome is not None:
                return outcome
        return WRONG
