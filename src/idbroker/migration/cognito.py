"""An AWS Cognito user pool as a migration source (kind ``cognito``).

Cognito never hands out password hashes, so the only way to move a user with their password is to
let the pool check it once: InitiateAuth with the USER_PASSWORD_AUTH flow (the app client must
allow ALLOW_USER_PASSWORD_AUTH), with ``SECRET_HASH`` = Base64(HMAC-SHA256(client secret,
username + client id)) when the app client has a secret, then GetUser with the access token for
the attributes. A challenge after a right password:

- ``NEW_PASSWORD_REQUIRED`` (an admin-created user still on the temporary password): the account
  is created here without a usable password and the user chooses one through our reset flow
  (`LegacyUser.must_change_password`); the attributes come with the challenge (``userAttributes``).
- any other (SMS_MFA, SOFTWARE_TOKEN_MFA, ...): the password was right, the pool's second factor
  cannot be completed here; the attributes come from AdminGetUser.

Forgot-password (`lookup`) uses AdminGetUser, which needs AWS credentials allowed to call it
(``aws_access_key_id`` / ``aws_secret_access_key`` options, else the default credential chain).
Groups come from AdminListGroupsForUser when credentials are at hand, else none.

Answers: NotAuthorizedException (wrong password, disabled user), UserNotFoundException,
UserNotConfirmedException and PasswordResetRequiredException are "no" (None); anything else - a
connection error, throttling, a timeout, an answer without what it must hold - is
`SourceUnavailable`. Connect and read timeouts are set on the client, with no retries.

Options: ``user_pool_id``, ``client_id``, ``region``, ``client_secret`` (secret), ``endpoint_url``
(e.g. moto in tests; https, http only for a loopback host), ``aws_access_key_id``,
``aws_secret_access_key`` (secret), ``timeout`` (seconds, default 5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..security import is_loopback_host
from .legacy import LegacyUser, SourceConfig, SourceUnavailable, timeout
from .webhook import PROFILE_CLAIMS

log = logging.getLogger("idbroker.migration")

NO = frozenset({"NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException",
                "PasswordResetRequiredException"})
NEW_PASSWORD_REQUIRED = "NEW_PASSWORD_REQUIRED"
POOL_ID_RE = re.compile(r"\A[\w-]+_[0-9a-zA-Z]+\Z")


class _NoSecretsInDebugLogs(logging.Filter):
    """botocore logs each request's parameters and each answer's body at DEBUG: the typed
    password (InitiateAuth) and the pool's tokens. Such records are dropped, whoever turned
    DEBUG on; the filter only runs for records the logger would emit."""

    MARKERS = ("PASSWORD", "SECRET_HASH", "AccessToken", "IdToken", "RefreshToken")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            return True
        text = record.getMessage()
        return not any(marker in text for marker in self.MARKERS)


for _name in ("botocore.endpoint", "botocore.parsers"):
    logging.getLogger(_name).addFilter(_NoSecretsInDebugLogs())


def secret_hash(client_secret: str, username: str, client_id: str) -> str:
    mac = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _as_user(attributes: dict[str, str], groups: list[str], must_change: bool = False) -> LegacyUser:
    email = attributes.get("email")
    if not email:
        raise ValueError("the user has no email attribute")
    claims: dict[str, Any] = {k: attributes[k] for k in PROFILE_CLAIMS if attributes.get(k)}
    if "address" in claims:  # Cognito keeps the address claim as a JSON string
        try:
            claims["address"] = json.loads(claims["address"])
        except ValueError:
            claims["address"] = {"formatted": claims["address"]}
    custom = {k.removeprefix("custom:"): v for k, v in attributes.items() if k.startswith("custom:")}
    return LegacyUser(email=email.strip().lower(), email_verified=attributes.get("email_verified") == "true",
                      claims=claims, groups=tuple(sorted(groups)), custom_attributes=custom,
                      must_change_password=must_change)


class CognitoSource:
    kind: ClassVar[str] = "cognito"
    secret_options: ClassVar[tuple[str, ...]] = ("client_secret", "aws_secret_access_key")

    def __init__(self, config: SourceConfig):
        o = config.options
        self.source_id = config.id
        for name in ("user_pool_id", "client_id", "region"):
            if not o.get(name):
                raise ValueError(f"{name} is required")
        self.user_pool_id, self.client_id = str(o["user_pool_id"]), str(o["client_id"])
        if not POOL_ID_RE.match(self.user_pool_id):
            raise ValueError("user_pool_id must look like <region>_<id>")
        self._client_secret = str(o.get("client_secret") or "") or None
        endpoint = str(o.get("endpoint_url") or "") or None
        if endpoint:
            parts = urlsplit(endpoint)
            if not parts.hostname or parts.scheme not in ("https", "http") or \
                    (parts.scheme == "http" and not is_loopback_host(parts.hostname)):
                raise ValueError("endpoint_url must be https (http only for a loopback host)")
        seconds = timeout(o)
        credentials = {}
        if o.get("aws_access_key_id"):
            credentials = {"aws_access_key_id": str(o["aws_access_key_id"]),
                           "aws_secret_access_key": str(o.get("aws_secret_access_key") or "")}
        import boto3  # imported here, not when the app starts: ~0.1 s of CPU and ~10 MB per worker
        from botocore.config import Config

        self._client = boto3.session.Session().client(
            "cognito-idp", region_name=str(o["region"]), endpoint_url=endpoint,
            config=Config(connect_timeout=seconds, read_timeout=seconds,
                          retries={"total_max_attempts": 1, "mode": "standard"}),
            **credentials)

    # -- the MigrationSource protocol ---------------------------------------------------------
    def verify(self, login: str, password: str) -> LegacyUser | None:
        if not login or not password:
            return None
        params = {"USERNAME": login, "PASSWORD": password}
        if self._client_secret:
            params["SECRET_HASH"] = secret_hash(self._client_secret, login, self.client_id)
        answer = self._call("InitiateAuth", self._client.initiate_auth, AuthFlow="USER_PASSWORD_AUTH",
                            ClientId=self.client_id, AuthParameters=params)
        if answer is None:
            return None
        try:
            if "AuthenticationResult" in answer:
                token = answer["AuthenticationResult"]["AccessToken"]
                got = self._call("GetUser", self._client.get_user, AccessToken=token)
                if got is None:
                    return None
                attributes = {a["Name"]: a.get("Value", "") for a in got["UserAttributes"]}
                return _as_user(attributes, self._groups(got.get("Username") or login))
            challenge = answer.get("ChallengeName")
            if challenge == NEW_PASSWORD_REQUIRED:
                raw = (answer.get("ChallengeParameters") or {}).get("userAttributes")
                attributes = json.loads(raw) if raw else None
                if not attributes or "email" not in attributes:
                    return self._admin_user(login, must_change=True)
                username = (answer.get("ChallengeParameters") or {}).get("USER_ID_FOR_SRP") or login
                return _as_user(attributes, self._groups(username), must_change=True)
            if challenge:
                log.info("cognito %s: challenge %s after a right password; the account is moved without it",
                         self.source_id, challenge)
                return self._admin_user(login)
            raise ValueError("neither a result nor a challenge")
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unavailable(f"unusable answer: {exc}") from None

    def lookup(self, login: str) -> LegacyUser | None:
        if not login:
            return None
        try:
            return self._admin_user(login)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unavailable(f"unusable answer: {exc}") from None

    # -- calls --------------------------------------------------------------------------------
    def _admin_user(self, login: str, must_change: bool = False) -> LegacyUser | None:
        got = self._call("AdminGetUser", self._client.admin_get_user, UserPoolId=self.user_pool_id, Username=login)
        if got is None:
            return None
        if got.get("Enabled") is False:
            return None
        attributes = {a["Name"]: a.get("Value", "") for a in got.get("UserAttributes") or ()}
        return _as_user(attributes, self._groups(got.get("Username") or login),
                        must_change=must_change or got.get("UserStatus") == "FORCE_CHANGE_PASSWORD")

    def _groups(self, username: str) -> list[str]:
        """The user's groups, when the configured credentials may list them; else none."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            answer = self._client.admin_list_groups_for_user(UserPoolId=self.user_pool_id, Username=username)
        except NoCredentialsError:
            return []
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDeniedException", "NotAuthorizedException"):
                return []
            raise self._unavailable(f"AdminListGroupsForUser: {exc.response.get('Error', {}).get('Code')}") from None
        except BotoCoreError as exc:
            raise self._unavailable(f"AdminListGroupsForUser: {type(exc).__name__}") from None
        return [g["GroupName"] for g in answer.get("Groups") or ()]

    def _call(self, name: str, method: Any, **params: Any) -> dict[str, Any] | None:
        """The answer; None for a "no" (`NO`); SourceUnavailable for anything else."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in NO:
                return None
            raise self._unavailable(f"{name}: {code or 'error'}") from None
        except BotoCoreError as exc:  # connection refused, timeouts, no credentials, unparsable answers
            raise self._unavailable(f"{name}: {type(exc).__name__}") from None

    def _unavailable(self, reason: str) -> SourceUnavailable:
        detail = f"cognito {self.source_id}: {reason}"
        log.warning("%s", detail)
        return SourceUnavailable(detail)
