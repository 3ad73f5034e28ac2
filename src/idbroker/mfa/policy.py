"""When a sign-in needs a second factor (OIDC Core §3.1.2.1 acr_values and max_age, and the
global / per-client policy), and what the session's amr and acr then say."""

from __future__ import annotations

from dataclasses import dataclass

from ..oauth2 import constants as c

# RFC 8176 authentication method reference values that count as a second factor.
SECOND_FACTOR_AMR = frozenset({"otp", "hwk", "swk", "sms", "mca", "fpt", "face", "pin", "mfa"})
POLICIES = ("off", "optional", "required")


@dataclass(frozen=True)
class Requirement:
    """What the user must do before the broker answers the client."""

    step: str  # "verify" (use an enrolled factor) or "enroll" (set one up first)


def effective_policy(global_policy: str, client_policy: str | None) -> str:
    return client_policy or global_policy


def has_second_factor(amr: list[str]) -> bool:
    return bool(SECOND_FACTOR_AMR.intersection(amr))


def requirement(*, policy: str, acr_values: list[str], session_amr: list[str], enrolled: bool,
                remembered: bool) -> Requirement | None:
    """None when the session may go on. `remembered` (a trusted device) satisfies the policy but
    never an explicit step-up (acr_values asking for MFA)."""
    step_up = c.ACR_MFA in acr_values
    wanted = step_up or policy == "required" or (policy == "optional" and enrolled)
    if not wanted or has_second_factor(session_amr):
        return None
    if remembered and not step_up:
        return None
    return Requirement("verify" if enrolled else "enroll")


def session_acr(amr: list[str]) -> str:
    return c.ACR_MFA if has_second_factor(amr) else c.ACR_PASSWORD
