"""FACTORS: every second-factor kind the broker knows, in one table (kind -> class). The
composition root builds one instance of each with the collaborators its ``__init__`` names."""

from __future__ import annotations

from .base import Factor
from .codes import EmailFactor, SmsFactor
from .totp import TotpFactor
from .webauthn import WebAuthnFactor

FACTORS: dict[str, type[Factor]] = {
    "totp": TotpFactor,
    "sms": SmsFactor,
    "email": EmailFactor,
    "webauthn": WebAuthnFactor,
}
