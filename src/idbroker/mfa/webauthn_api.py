"""The names of py_webauthn that the passkey ceremonies (mfa/webauthn.py) use, in a module of their
own so that `load_webauthn` imports them on the first ceremony rather than when a worker starts."""
# ruff: noqa: F401 - every name here is imported for mfa/webauthn.py, which reads them off this module

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
    WebAuthnException,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)
