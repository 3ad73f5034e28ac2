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
# OAuth 2.0 Multiple Response Types §3 / OIDC Core §3.3: the hybrid flow (normalised order).
RESPONSE_CODE_ID_TOKEN = "code id_token"
RESPONSE_CODE_TOKEN = "code token"
RESPONSE_CODE_ID_TOKEN_TOKEN = "code id_token token"
RESPONSE_TYPES = (RESPONSE_CODE, RESPONSE_ID_TOKEN, RESPONSE_ID_TOKEN_TOKEN, RESPONSE_CODE_ID_TOKEN,
                  RESPONSE_CODE_TOKEN, RESPONSE_CODE_ID_TOKEN_TOKEN)

RESPONSE_MODES = ("query", "fragment", "form_post")

SCOPE_OPENID = "openid"
SCOPE_OFFLINE = "offline_access"
STANDARD_SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")

PROMPTS = ("none", "login", "consent", "select_account", "create")  # create: OIDC Prompt Create 1.0

PKCE_S256 = "S256"
CLIENT_ASSERTION_TYPE_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

TYP_ACCESS_TOKEN = "at+jwt"           # RFC 9068 §2.1
TYP_LOGOUT_TOKEN = "logout+jwt"       # OIDC Back-Channel Logout §2.4
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

ACR_PASSWORD = "urn:idbroker:acr:pwd"   # one factor
ACR_MFA = "urn:idbroker:acr:mfa"        # two factors (acr_values=urn:idbroker:acr:mfa asks for step-up)

ID_TOKEN_DEFAULT_ALG = "RS256"          # OIDC Registration §2: "the default, if omitted, is RS256"
SUBJECT_PUBLIC = "public"               # OIDC Core §8
SUBJECT_PAIRWISE = "pairwise"

# Longest redirect URI (registered or requested): the authorization_codes.redirect_uri column.
MAX_REDIRECT_URI = 2048

# RFC 8693 token exchange: the grant type (§2.1) and the token type identifiers (§3).
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
