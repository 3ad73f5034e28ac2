"""One class per OAuth 2.0 / OIDC error code (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1; RFC 7009 §2.2.1;
OIDC Core §3.1.2.6). ``description`` is public; ``detail`` goes to the log only."""

from __future__ import annotations


class OAuth2Error(Exception):
    error = "server_error"
    status_code = 400
    redirectable = True

    def __init__(self, description: str = "", *, detail: str = "", status_code: int | None = None):
        super().__init__(description or self.error)
        self.description = description
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code

    @property
    def safe_description(self) -> str:
        """RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E."""
        return "".join(ch for ch in self.description if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.safe_description
        return body


class InvalidRequestError(OAuth2Error):
    error = "invalid_request"


class InvalidClientError(OAuth2Error):
    """RFC 6749 §5.2: 401 with WWW-Authenticate when the client used HTTP authentication."""
    error = "invalid_client"
    status_code = 401
    redirectable = False


class InvalidGrantError(OAuth2Error):
    error = "invalid_grant"


class UnauthorizedClientError(OAuth2Error):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuth2Error):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuth2Error):
    error = "invalid_scope"


class AccessDeniedError(OAuth2Error):
    error = "access_denied"


class UnsupportedResponseTypeError(OAuth2Error):
    error = "unsupported_response_type"


class ServerError(OAuth2Error):
    error = "server_error"
    status_code = 500


class TemporarilyUnavailableError(OAuth2Error):
    error = "temporarily_unavailable"
    status_code = 503


class UnsupportedTokenTypeError(OAuth2Error):
    error = "unsupported_token_type"


class InvalidTokenError(OAuth2Error):
    """RFC 6750 §3.1."""
    error = "invalid_token"
    status_code = 401


class InsufficientScopeError(OAuth2Error):
    error = "insufficient_scope"
    status_code = 403


# OIDC Core §3.1.2.6
class LoginRequiredError(OAuth2Error):
    error = "login_required"


class ConsentRequiredError(OAuth2Error):
    error = "consent_required"


class InteractionRequiredError(OAuth2Error):
    error = "interaction_required"


class AccountSelectionRequiredError(OAuth2Error):
    error = "account_selection_required"


class RequestNotSupportedError(OAuth2Error):
    error = "request_not_supported"


class RequestUriNotSupportedError(OAuth2Error):
    error = "request_uri_not_supported"


class RegistrationNotSupportedError(OAuth2Error):
    error = "registration_not_supported"


class BadAuthorizationRequest(Exception):
    """The client or redirect URI cannot be trusted: show an error page, never redirect
    (RFC 6749 §4.1.2.1)."""

    def __init__(self, message: str, status_code: int = 400, *, params: dict[str, object] | None = None):
        super().__init__(message % params if params else message)
        self.message = message          # a message id, translated on the error page
        self.params = params or {}      # fills its %(name)s placeholders
        self.status_code = status_code


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2."""
    error = "invalid_target"
