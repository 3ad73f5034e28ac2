"""The credential-issuer interface and the table of issuers (`ISSUERS`), keyed by the token type
a client asks for (RFC 8693 §3 token type identifiers, or a URN of ours).

An issuer turns a verified subject - the claims of an access or ID token this broker issued,
already checked for signature, expiry, revocation and the user's disabled state by the caller -
into a credential for somewhere else: temporary AWS credentials through STS
AssumeRoleWithWebIdentity, or a token for another audience (token exchange). It decides by its
own policy (rules, allowed audiences, scopes never widened) and raises `CredentialRefused` with an
RFC 6749 §5.2 error code when the policy says no, or `CredentialUnavailable` when the service
behind it cannot be reached. Each issuer is one class and one entry; the token endpoint's
token-exchange grant and the `/credentials/aws` endpoint look issuers up here.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from .aws import AwsCredentials
from .values import CredentialRefused, CredentialRequest, CredentialUnavailable, IssuedCredential, Subject

__all__ = ["ISSUERS", "CredentialIssuer", "CredentialRefused", "CredentialRequest", "CredentialUnavailable",
           "IssuedCredential", "Subject"]


class CredentialIssuer(Protocol):
    token_type: ClassVar[str]

    async def issue(self, request: CredentialRequest) -> IssuedCredential: ...


# requested token type -> issuer class.
ISSUERS: dict[str, type[CredentialIssuer]] = {
    AwsCredentials.token_type: AwsCredentials,   # POST /credentials/aws
}
