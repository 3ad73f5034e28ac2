"""When a sign-in needs a second factor (OIDC Core §3.1.2.1 acr_values and max_age, and the
global / per-client policy), and what the session's amr and acr then say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..oauth2 import constants as c

# RFC 8176 authentication method reference values that count as a second factor.
SECOND_FACTOR_AMR = frozenset({"otp", "hwk", "swk", "sms", "mca", "fpt", "face", "pin", "mfa"})


@dataclass(frozen=True)
class Requirement:
    """What the user must do before the broker answers the client."""

    step: str  # "verify" (use an enrolled factor) or "enroll" (set one up first)


def effective_policy(global_policy: str, client_policy: str | None) -> str:
    return client_policy or global_policy


def has_second_factor(amr: list[str]) -> bool:
    return bool(SECOND_FACTOR_AMR.intersection(amr))


def requirement(*, policy: str, acr_values: list[str], session_amr: list[str], enrolled: bool | Callable[[], bool],
                remembered: bool | Callable[[], bool]) -> Requirement | None:
    """None when the session may go on. `remembered` (a trusted device) satisfies the policy but
    never an explicit step-up (acr_values asking for MFA). `enrolled` and `remembered` may be
    functions (each a query): they are called only when the answer depends on them, so under
    policy "off" without a step-up, or once the session has a second factor, neither is asked."""
    step_up = c.ACR_MFA in acr_values
    if not (step_up or policy in ("required", "optional")) or has_second_factor(session_amr):
        return None
    is_enrolled = enrolled() if callable(enrolled) else enrolled
    if not (step_up or policy == "required" or (policy == "optional" and is_enrolled)):
        return None
    if not step_up and (remembered() if callable(remembered) else remembered):
        return None
    return Requirement("verify" if is_enrolled else "enroll")


def session_acr(amr: list[str]) -> str:
    return c.ACR_MFA if has_second_factor(amr) else c.ACR_PASSWORD
