"""Authenticator apps (TOTP, RFC 6238): 30-second steps, 6 digits, SHA-1 - what every app
accepts. A code of the step before or after the current one is accepted too (clock drift), and
each step's code works once: the last accepted step is stored in ``last_counter`` and equal or
older steps are refused from then on."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

import pyotp

from ..text import N_
from .base import Attempt, FactorError

if TYPE_CHECKING:
    from ..settings import MfaSettings
    from ..store.models import MfaFactor
    from .service import MfaService

STEP = 30
DIGITS = 6
WINDOW = 1  # steps accepted on either side of the current one (pyotp's valid_window=1)
CODE_INVALID = N_("That code is not right. Enter the current code from your authenticator app.")


def now() -> float:
    """The clock (tests replace it)."""
    return time.time()


def clean_code(value: str) -> str:
    return "".join(ch for ch in value if ch in "0123456789")[:DIGITS + 2]


def grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


class TotpFactor:
    kind = "totp"
    amr = "otp"
    label = N_("Authenticator app")
    challenge = False

    def __init__(self, mfa: MfaService, settings: MfaSettings):
        self.mfa = mfa
        self.settings = settings  # totp_issuer

    def _secret(self, factor: MfaFactor) -> str:
        assert factor.secret is not None
        return self.mfa.unseal(factor.secret)

    def matching_step(self, secret: str, code: str, at: float | None = None) -> int | None:
        """The time step (within the window) whose code is `code`, or None."""
        code = clean_code(code)
        if len(code) != DIGITS:
            return None
        otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
        current = int((now() if at is None else at) // STEP)
        found = None
        for step in range(current - WINDOW, current + WINDOW + 1):  # no early exit: same work either way
            if hmac.compare_digest(otp.generate_otp(step), code):
                found = step
        return found

    # -- enrolment -----------------------------------------------------------------------------
    def enrol(self, attempt: Attempt) -> tuple[MfaFactor, dict[str, Any]]:
        factor = attempt.factor
        if factor is None:
            factor = self.mfa.add_pending(attempt.user.id, self.kind, secret=pyotp.random_base32(32))
        secret = self._secret(factor)
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
            name=attempt.user.email, issuer_name=self.settings.totp_issuer)
        import segno  # here: only the enrolment page draws a QR code (~1.2 MB a worker otherwise)

        qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")
        return factor, {"qr": qr, "secret": secret, "secret_grouped": grouped(secret), "otpauth": uri,
                        "totp_issuer": self.settings.totp_issuer}

    def confirm(self, attempt: Attempt) -> bool:
        assert attempt.factor is not None
        step = self.matching_step(self._secret(attempt.factor), attempt.value("code", 32))
        if step is None:
            raise FactorError(CODE_INVALID)
        return self.mfa.confirm(attempt.factor.id, counter=step)

    # -- use ------------------------------------------------------------------------------------
    def begin(self, attempt: Attempt) -> dict[str, Any]:
        return {}

    def verify(self, attempt: Attempt) -> bool:
        assert attempt.factor is not None
        step = self.matching_step(self._secret(attempt.factor), attempt.value("code", 32))
        return step is not None and self.mfa.use_counter(attempt.factor.id, step)

    def describe(self, factor: MfaFactor) -> str:
        return ""
