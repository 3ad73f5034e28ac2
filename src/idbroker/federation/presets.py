"""Presets: the well-known providers as data for the "oidc" and "oauth2" kinds (openid_connect.py,
oauth.py), so that ``idbroker idp add --kind google --client-id X --client-secret S`` is enough.

Each preset gives the kind, the issuer (discovery) or the endpoints, the default scopes, the
claim mapping (LOCAL=UPSTREAM) and the quirk flags the kinds understand:

- ``issuer_aliases``: other ``iss`` values the provider puts in ID tokens (Google documents
  that its ID tokens may carry ``accounts.google.com`` as well as its https issuer);
- ``tenant_issuer``: Microsoft's multi-tenant discovery names the issuer
  ``https://login.microsoftonline.com/{tenantid}/v2.0``; each token's ``iss`` must be that with
  its own ``tid``. ``tenant`` picks the discovery endpoint (``common``, ``organizations``,
  ``consumers`` or one tenant id) and ``tenants`` is an optional allow-list of ``tid`` values;
- ``apple_client_secret``: the client secret is an ES256 JWT made from the .p8 key
  (``private_key``), ``team_id`` and ``key_id``; ``user_param``: the name arrives only on the
  first sign-in, in the ``user`` field of the form_post callback;
- ``emails_url``: GitHub's profile may hide the email; the primary address and whether it is
  verified come from ``GET /user/emails``;
- ``subject_claim``: OAuth 2.0 profiles name the user's id differently (``id``, ``user_id``).

What the operator gives always wins over the preset (a self-hosted GitLab's issuer, more scopes);
claim mappings are merged, the operator's entries last. The preset's name is kept as the option
``preset``: the sign-in button shows its mark (web/static/idp/<preset>.svg, one per preset,
checked by tests/unit/test_idp_marks.py) when the provider has no logo of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .oauth import claim_map

MICROSOFT_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
FACEBOOK_GRAPH = "https://graph.facebook.com/v21.0"

PRESETS: dict[str, dict[str, Any]] = {
    "google": {
        "kind": "oidc", "issuer": "https://accounts.google.com", "scopes": ["openid", "email", "profile"],
        "issuer_aliases": ["accounts.google.com"],
    },
    "apple": {
        "kind": "oidc", "issuer": "https://appleid.apple.com", "scopes": ["openid", "name", "email"],
        "response_mode": "form_post", "token_auth": "client_secret_post",
        "apple_client_secret": True, "user_param": True,
    },
    "microsoft": {
        "kind": "oidc", "issuer": MICROSOFT_ISSUER, "tenant": "common", "tenant_issuer": True,
        "scopes": ["openid", "email", "profile"],
    },
    "github": {
        "kind": "oauth2", "authorize_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token", "userinfo_url": "https://api.github.com/user",
        "emails_url": "https://api.github.com/user/emails", "scopes": ["read:user", "user:email"],
        "token_auth": "client_secret_post", "subject_claim": "id",
        "claims": {"preferred_username": "login", "picture": "avatar_url", "profile": "html_url"},
    },
    "facebook": {
        "kind": "oauth2", "authorize_url": "https://www.facebook.com/v21.0/dialog/oauth",
        "token_url": f"{FACEBOOK_GRAPH}/oauth/access_token",
        "userinfo_url": f"{FACEBOOK_GRAPH}/me?fields=id,name,first_name,last_name,email,picture",
        "scopes": ["public_profile", "email"], "token_auth": "client_secret_post", "subject_claim": "id",
        "claims": {"given_name": "first_name", "family_name": "last_name", "picture": "picture.data.url"},
    },
    "amazon": {
        "kind": "oauth2", "authorize_url": "https://www.amazon.com/ap/oa",
        "token_url": "https://api.amazon.com/auth/o2/token", "userinfo_url": "https://api.amazon.com/user/profile",
        "scopes": ["profile"], "token_auth": "client_secret_post", "subject_claim": "user_id",
    },
    "gitlab": {
        "kind": "oidc", "issuer": "https://gitlab.com", "scopes": ["openid", "email", "profile"],
        "claims": {"preferred_username": "nickname"},
    },
}


def expand(kind_or_preset: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, options) for a kind or a preset name; options that are None are not given."""
    given = {k: v for k, v in options.items() if v is not None}
    if "claims" in given:
        given["claims"] = claim_map(given["claims"])
    preset = PRESETS.get(kind_or_preset)
    if preset is None:
        return kind_or_preset, given
    merged = {k: v for k, v in preset.items() if k != "kind"} | given
    merged["claims"] = claim_map(preset.get("claims")) | given.get("claims", {})
    if "issuer" not in given and "{tenant}" in str(preset.get("issuer", "")):
        merged["issuer"] = preset["issuer"].format(tenant=merged["tenant"])
    merged["preset"] = kind_or_preset
    return preset["kind"], merged
