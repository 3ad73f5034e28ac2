"""OpenID Connect Discovery 1.0 §3 provider metadata, with RFC 8414 fields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..credentials.aws import AWS_SCOPE
from ..keys.keystore import CONTENT_ENCS, ENC_ALGS
from ..oauth2 import constants as c
from ..oauth2 import jarm
from ..oauth2.device_codes import GRANT_DEVICE_CODE
from ..oauth2.dpop import DPOP_ALGS
from ..oauth2.request_objects import OBJECT_ALGS
from ..text import SUPPORTED as SUPPORTED_LOCALES
from .claims import EXTRA_SCOPES, SUPPORTED_CLAIMS

if TYPE_CHECKING:
    from ..settings import ServerSettings


def metadata(server: ServerSettings, paths: Mapping[str, str], *, registration: bool = False) -> dict[str, Any]:
    """`paths`: endpoint name -> path under the issuer (the composition root's table);
    `registration`: dynamic client registration is on (RFC 7591, the setting `registration`)."""
    def e(name: str) -> str:
        return server.issuer + paths[name]

    auth_methods = [c.AUTH_BASIC, c.AUTH_POST, c.AUTH_PRIVATE_KEY_JWT, c.AUTH_NONE]
    out = {
        "issuer": server.issuer,
        "authorization_endpoint": e("authorize"),
        "token_endpoint": e("token"),
        "userinfo_endpoint": e("userinfo"),
        "jwks_uri": e("jwks"),
        "revocation_endpoint": e("revoke"),
        "introspection_endpoint": e("introspect"),
        "end_session_endpoint": e("logout"),
        "scopes_supported": [*c.STANDARD_SCOPES, *EXTRA_SCOPES, AWS_SCOPE],
        "response_types_supported": list(c.RESPONSE_TYPES),  # code, implicit, hybrid
        "response_modes_supported": [*c.RESPONSE_MODES, *jarm.MODES],  # JARM §4: jwt, query.jwt, ...
        "authorization_signing_alg_values_supported": list(jarm.SIGNING_ALGS),  # JARM §4
        "grant_types_supported": [c.GRANT_AUTHORIZATION_CODE, c.GRANT_REFRESH_TOKEN,
                                  c.GRANT_CLIENT_CREDENTIALS, c.GRANT_IMPLICIT, c.GRANT_TOKEN_EXCHANGE,
                                  GRANT_DEVICE_CODE],
        "subject_types_supported": [c.SUBJECT_PUBLIC, c.SUBJECT_PAIRWISE],
        # RS256 is the default of a client that registered none (OIDC Registration §2), ES256 on request.
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods[:3],
        "code_challenge_methods_supported": [c.PKCE_S256],
        "claims_supported": SUPPORTED_CLAIMS,
        "claims_parameter_supported": True,
        "request_parameter_supported": True,  # RFC 9101 (oauth2/request_objects.py); request_uri: PAR's only
        "request_uri_parameter_supported": False,
        "request_object_signing_alg_values_supported": ["none", *OBJECT_ALGS],
        # RFC 9101 §6.1: request objects encrypted to the broker's enc key (keys/keystore.py)
        "request_object_encryption_alg_values_supported": list(ENC_ALGS),
        "request_object_encryption_enc_values_supported": list(CONTENT_ENCS),
        "pushed_authorization_request_endpoint": e("par"),  # RFC 9126 §5
        "require_pushed_authorization_requests": server.par_required,
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),  # RFC 9449 §5.1
        "device_authorization_endpoint": e("device_authorization"),  # RFC 8628 §4
        "prompt_values_supported": list(c.PROMPTS),
        "acr_values_supported": [c.ACR_PASSWORD, c.ACR_MFA],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "ui_locales_supported": list(SUPPORTED_LOCALES),  # BCP 47 tags of the hosted pages
        "claim_types_supported": ["normal"],
    }
    if registration:
        out["registration_endpoint"] = e("register")  # OIDC Discovery §3 / RFC 8414 §2
    return out


def metadata_bytes(server: ServerSettings, paths: Mapping[str, str], *, registration: bool = False) -> bytes:
    return json.dumps(metadata(server, paths, registration=registration), separators=(",", ":")).encode()
