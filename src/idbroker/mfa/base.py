"""The second-factor interface (the table of kinds, FACTORS, is in factors.py).

A kind is a small object with four operations; the /mfa page and the account settings call only
these, so a new kind is one class and one entry in the FACTORS table of factors.py. Its
``__init__`` names the few collaborators it uses (the factor store, a sender, a settings
section); the composition root builds each kind once with them, so no kind sees the whole broker:

- ``enrol(attempt)``: starts setting one up. Creates the pending (unconfirmed) ``MfaFactor`` and
  returns it with what its enrolment page shows (a QR code, where a code was sent...).
- ``confirm(attempt)``: the first response for the pending factor; True confirms it.
- ``begin(attempt)``: for challenge-response kinds (``challenge = True``) before each use: sends a
  code (SMS, email) or makes a challenge. Returns what the page shows.
- ``verify(attempt)``: checks a response for an enrolled factor. Never raises for a wrong answer.

Templates: the /mfa page includes ``mfa/<kind>_verify.html`` for the chosen factor and the
enrolment page ``mfa/<kind>_enrol.html`` (both receive ``factor``, ``csrf_token``,
``interaction``, ``next`` and what enrol/begin returned).

Authentication method references (RFC 8176 §2) added to the session's ``amr``, with "mfa":

==========  =======  =========================================================================
kind        amr      why
==========  =======  =========================================================================
totp        otp      a time-based one-time password (RFC 6238)
sms         sms      "confirmation using SMS text message" is its own RFC 8176 value
email       otp      RFC 8176 has no mail value; a one-time code by mail is an OTP
recovery    otp      a single-use recovery code is a one-time password too (not a kind here:
                     it is a fallback of every account, see recovery.py)
webauthn    hwk/swk  the passkey work decides (hardware- or software-bound key)
==========  =======  =========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ..store.models import MfaFactor, User

RECOVERY = "recovery"  # the pseudo-kind of recovery codes on the /mfa page
RECOVERY_AMR = "otp"


class FactorError(Exception):
    """A problem to show the user (a message id and its placeholders), e.g. "SMS not sent"."""

    def __init__(self, message: str, **params: Any):
        super().__init__(message)
        self.message = message
        self.params = params


@dataclass
class Attempt:
    """One use of a factor: who, which factor row, what they submitted, and how to word messages."""

    user: User
    factor: MfaFactor | None = None
    form: Mapping[str, str] = field(default_factory=dict)
    lang: str = "en"
    # Renders a text template in `lang` (mail bodies): (template, **context) -> text.
    render_text: Callable[..., str] | None = None
    gettext: Callable[[str], str] = lambda s: s
    ip: str | None = None
    user_agent: str | None = None

    def value(self, name: str, max_length: int = 256) -> str:
        raw = self.form.get(name)
        return raw[:max_length].strip() if isinstance(raw, str) else ""


class Factor(Protocol):
    kind: ClassVar[str]
    amr: ClassVar[str]
    label: ClassVar[str]       # message id of the method's name ("Authenticator app")
    challenge: ClassVar[bool]  # True: begin() before verify()

    def enrol(self, attempt: Attempt) -> tuple[MfaFactor, dict[str, Any]]: ...
    def confirm(self, attempt: Attempt) -> bool: ...
    def begin(self, attempt: Attempt) -> dict[str, Any]: ...
    def verify(self, attempt: Attempt) -> bool: ...
    def describe(self, factor: MfaFactor) -> str: ...   # a detail to show next to its name (masked)
