"""Password policy (NIST SP 800-63B §5.1.1.2): length bounds, no composition rules, no password
that is the account's own address, and none known from breaches or common-password lists
(accounts/breached.py). A rejection says why. Sign-up, reset and change all call `check`."""

from __future__ import annotations

from collections.abc import Callable

from ..text import N_


class PasswordRejected(ValueError):
    """`message` is a translatable message id; `params` fills its placeholders."""

    def __init__(self, message: str, **params: object):
        self.message = message
        self.params = params
        super().__init__(message % params if params else message)


TOO_SHORT = N_("Use at least %(min)d characters.")
TOO_LONG = N_("Use at most %(max)d characters.")
IS_EMAIL = N_("Do not use your email address as your password.")
BREACHED = N_("This password appears in lists of breached or common passwords. Choose another one.")


class PasswordPolicy:
    def __init__(self, min_length: int = 8, max_length: int = 128,
                 breached: Callable[[str], bool] | None = None):
        self.min_length = min_length
        self.max_length = max_length
        self.breached = breached  # password -> known from breaches; None: not checked

    def check(self, password: str, *, email: str | None = None) -> None:
        if len(password) < self.min_length:
            raise PasswordRejected(TOO_SHORT, min=self.min_length)
        if len(password) > self.max_length:
            raise PasswordRejected(TOO_LONG, max=self.max_length)
        if email and password.strip().lower() == email.strip().lower():
            raise PasswordRejected(IS_EMAIL)
        if self.breached is not None and self.breached(password):
            raise PasswordRejected(BREACHED)
