"""Standard claims by scope (OIDC Core §5.1, §5.4)."""

from __future__ import annotations

from typing import Any

from ..store.models import User

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
                "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}
# The upstream provider (our id of it, `idbroker idp`) the session signed in through, in ID tokens,
# access tokens and userinfo; absent for local sign-ins (like Keycloak's `identity_provider`).
IDP_CLAIM = "idp"
SUPPORTED_CLAIMS = sorted({"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                           "sid", "at_hash", "c_hash", IDP_CLAIM, *[c for cs in SCOPE_CLAIMS.values() for c in cs]})


def upstream_claims(idp: str | None) -> dict[str, Any]:
    """The `idp` claim of a session or grant that came from an upstream provider."""
    return {IDP_CLAIM: idp} if idp else {}


def user_claims(user: User, scopes: list[str] | set[str]) -> dict[str, Any]:
    """The claims `scopes` release for `user`; empty values are omitted (OIDC Core §5.3.2)."""
    out: dict[str, Any] = {"sub": user.sub}
    for scope in scopes:
        for claim in SCOPE_CLAIMS.get(scope, ()):
            value = _value(user, claim)
            if value is not None and value != "":
                out[claim] = value
    return out


def _value(user: User, claim: str) -> Any:
    if claim == "name":
        parts = [p for p in (user.given_name, user.middle_name, user.family_name) if p]
        return " ".join(parts) or None
    if claim == "updated_at":
        return int(user.updated_at.timestamp()) if user.updated_at else None
    if claim == "profile":
        return None
    if claim == "phone_number_verified":
        return bool(user.phone_number_verified) if user.phone_number else None
    return getattr(user, claim, None)
