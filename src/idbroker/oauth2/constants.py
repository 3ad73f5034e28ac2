"""Protocol strings, named once."""

AUTH_NONE = "none"
AUTH_BASIC = "client_secret_basic"
AUTH_POST = "client_secret_post"
AUTH_PRIVATE_KEY_JWT = "private_key_jwt"

GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_REFRESH_TOKEN = "refresh_token"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_IMPLICIT = "implicit"

RESPONSE_CODE = "code"
RESPONSE_ID_TOKEN = "id_token"
RESPONSE_ID_TOKEN_TOKEN = "id_token token"

RESPONSE_MODES = ("query", "fragment", "form_post")

SCOPE_OPENID = "openid"
SCOPE_OFFLINE = "offline_access"
STANDARD_SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")

PROMPTS = ("none", "login", "consent", "select_account")

PKCE_S256 = "S256"
CLIENT_ASSERTION_TYPE_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

TYP_ACCESS_TOKEN = "at+jwt"           # RFC 9068 §2.1
TYP_LOGOUT_TOKEN = "logout+jwt"       # OIDC Back-Channel Logout §2.4
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

ACR_PASSWORD = "urn:idbroker:acr:pwd"   # one factor
ACR_MFA = "urn:idbroker:acr:mfa"        # two factors (acr_values=urn:idbroker:acr:mfa asks for step-up)

# Longest redirect URI (registered or requested): the authorization_codes.redirect_uri column.
MAX_REDIRECT_URI = 2048
