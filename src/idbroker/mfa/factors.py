"""FACTORS: every second-factor kind the broker knows, in one table (kind -> class taking the
Provider). The passkey work adds "webauthn" here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Factor
from .codes import EmailFactor, SmsFactor
from .totp import TotpFactor
from .webauthn import WebAuthnFactor

if TYPE_CHECKING:
    from ..provider import Provider

FACTORS: dict[str, type] = {
    "totp": TotpFactor,
    "sms": SmsFactor,
    "email": EmailFactor,
    "webauthn": WebAuthnFactor,
}


def get_factor(provider: Provider, kind: str) -> Factor | None:
    """The kind's implementation (one per provider), or None for an unknown kind."""
    cls = FACTORS.get(kind)
    if cls is None:
        return None
    cache: dict[str, Factor] = provider.__dict__.setdefault("_mfa_factor_impls", {})
    impl = cache.get(kind)
    if impl is None:
        impl = cache[kind] = cls(provider)
    return impl
