"""Standard claims by scope (OIDC Core §5.1, §5.4), and the `groups` scope of ours.

`groups` (not an OIDC Core scope; the name Keycloak, Okta and Entra ID use for the same thing): the
user's group memberships (`User.groups`, filled by federation - upstream claims, SAML attributes,
LDAP - by migration, and by `idbroker users`), released as the `groups` claim, a JSON array of
strings, in the ID token and userinfo only when the client asked for the scope and is allowed it
(a client's scopes list; `clients update ID --scope ... --scope groups`)."""

from __future__ import annotations

from typing import Any

from ..store.models import User

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
                "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
    "groups": ("groups",),
}
GROUPS_SCOPE = "groups"
# The scopes of discovery's scopes_supported beyond OIDC Core's.
EXTRA_SCOPES = (GROUPS_SCOPE,)
# The upstream provider (our id of it, `idbroker idp`) the session signed in through, in ID tokens,
# access tokens and userinfo; absent for local sign-ins (like Keycloak's `identity_provider`).
IDP_CLAIM = "idp"
SUPPORTED_CLAIMS = sorted({"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                           "sid", "at_hash", "c_hash", IDP_CLAIM, *[c for cs in SCOPE_CLAIMS.values() for c in cs]})


def upstream_claims(idp: str | None) -> dict[str, Any]:
    """The `idp` claim of a session or grant that came from an upstream provider."""
    return {IDP_CLAIM: idp} if idp else {}


def id_token_claims(user: User, scopes: list[str] | set[str]) -> dict[str, Any]:
    """The scope claims every ID token carries, whatever the flow: `groups` (which clients read
    from the ID token, as from Keycloak's, Okta's and Entra ID's), when its scope was granted.
    The standard scopes' claims stay in userinfo (OIDC Core §5.4)."""
    released = user_claims(user, [s for s in scopes if s == GROUPS_SCOPE])
    released.pop("sub")
    return released


def user_claims(user: User, scopes: list[str] | set[str]) -> dict[str, Any]:
    """The claims `scopes` release for `user`; empty values are omitted (OIDC Core §5.3.2)."""
    out: dict[str, Any] = {"sub": user.sub}
    for scope in scopes:
        for claim in SCOPE_CLAIMS.get(scope, ()):
            value = _value(user, claim)
            if value is not None and value != "":
                out[claim] = value
    return out


def requested_claims(user: User, request: dict[str, Any] | None, where: str, scopes: list[str] | set[str]
                     ) -> dict[str, Any]:
    """OIDC Core §5.5: the claims the `claims` parameter asked for in `where` (id_token or
    userinfo), each released only when a granted scope covers it (what the user consented to);
    `essential` is a hint, a claim we cannot release is left out (§5.5.1)."""
    names = (request or {}).get(where) or {}
    covered = {claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ())}
    out: dict[str, Any] = {}
    for name in names:
        if name in covered:
            value = _value(user, name)
            if value is not None and value != "":
                out[name] = value
    return out


def _value(user: User, claim: str) -> Any:
    if claim == "name":
        parts = [p for p in (user.given_name, user.middle_name, user.family_name) if p]
        return " ".join(parts) or None
    if claim == "updated_at":
        return int(user.updated_at.timestamp()) if user.updated_at else None
    if claim == "profile":
        return None
    if claim == "groups":
        return [g for g in (user.groups or []) if isinstance(g, str)] or None
    if claim == "phone_number_verified":
        return bool(user.phone_number_verified) if user.phone_number else None
    return getattr(user, claim, None)
