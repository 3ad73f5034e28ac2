"""What a migration source answers (`LegacyUser`), how it says it could not answer
(`SourceUnavailable`), what it is built with (`SourceConfig`) and the words the user sees. Kept
apart from base.py so that base.py can hold the table of kinds without an import circle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..text import N_

# What the user is told when a source could not be asked (down, slow, answering garbage).
UNAVAILABLE = N_("Your password cannot be checked right now. Please try again later.")
# The legacy pool accepted the password but wants a new one (Cognito's NEW_PASSWORD_REQUIRED).
MUST_CHANGE = N_("Your password has to be changed before you can sign in. "
                 "Use “Forgot your password?” to choose a new one.")


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


@dataclass(frozen=True)
class SourceConfig:
    """One configured source (`idbroker sources add`), as its kind's class is built with it.
    Secrets in `options` are already decrypted; the class must never log them."""

    id: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


def flag(value: Any) -> bool:
    """An option that may come as text from the CLI: "false" must not be true."""
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def timeout(options: Mapping[str, Any], default: float = 5.0) -> float:
    value = float(options.get("timeout") or default)
    if not 0 < value <= 60:
        raise ValueError("timeout must be between 0 and 60 seconds")
    return value
