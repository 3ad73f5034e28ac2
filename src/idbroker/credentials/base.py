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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


class CredentialRefused(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error              # e.g. invalid_target, invalid_scope, access_denied
        self.description = description


class CredentialUnavailable(Exception):
    """The service behind the issuer failed (STS down, throttled); `detail` is for the log."""


@dataclass(frozen=True)
class Subject:
    """The verified token the request presented."""

    sub: str
    client_id: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    actor: Mapping[str, Any] | None = None   # RFC 8693 §4.1 `act`, for delegation


@dataclass(frozen=True)
class CredentialRequest:
    subject: Subject
    audience: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()
    options: Mapping[str, str] = field(default_factory=dict)  # e.g. role_arn, duration_seconds


@dataclass(frozen=True)
class IssuedCredential:
    token_type: str            # RFC 8693 §2.2.1 issued_token_type
    body: Mapping[str, Any]    # the JSON the client receives
    expires_in: int


class CredentialIssuer(Protocol):
    token_type: ClassVar[str]

    async def issue(self, request: CredentialRequest) -> IssuedCredential: ...


# requested token type -> issuer class. Filled by the credentials work.
ISSUERS: dict[str, type[CredentialIssuer]] = {}
