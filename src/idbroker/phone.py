"""Phone numbers: the one rule for every place that takes one (sign-up, account page, SMS
factor, CLI, SMS sending).

A number is stored and sent in E.164 (ITU-T E.164; OpenID Connect Core §5.1 recommends it for
`phone_number`): a `+`, a country code that does not start with 0, and at most 15 digits in all.
Input may carry the separators people type (spaces, dots, dashes, slashes, brackets) and an
international `00` prefix instead of `+`. National numbers without a country code are refused:
without a region setting there is no way to know which country they belong to.
"""

from __future__ import annotations

import re

MAX_INPUT = 40  # longer input is refused before it is looked at
_SEPARATORS = re.compile(r"[\s().\-/]")
# 7 to 15 digits: the shortest numbering plans in use (e.g. +683 and four digits) up to E.164's limit.
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normalise_phone(raw: str | None) -> str | None:
    """The number in E.164, or None when `raw` is not an international phone number."""
    if not raw or len(raw) > MAX_INPUT:
        return None
    compact = _SEPARATORS.sub("", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact if E164_RE.match(compact) else None


def is_e164(number: str) -> bool:
    return bool(E164_RE.match(number))
