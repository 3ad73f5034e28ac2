"""Every option of the broker, with its default, read from TOML and ``IDBROKER_*`` variables.

Precedence: built-in defaults < TOML file (``--config`` or ``IDBROKER_CONFIG``) < environment.
A TOML key ``token.access_token_ttl`` maps to the variable ``IDBROKER_ACCESS_TOKEN_TTL``: the
file may group options in tables, the environment uses the flat option name.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "IDBROKER_"
_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
SIGNING_ALGS = ("ES256", "RS256")


class SettingsError(Exception):
    """Configuration is invalid; ``problems`` holds one clear message per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Settings:
    # Public URL of the broker: the `iss` of every token. No trailing slash.
    issuer: str = "http://127.0.0.1:8000"
    # SQLAlchemy URL. Empty means SQLite in `data_dir`.
    database_url: str = ""
    # Where the embedded SQLite database and the generated secret key live.
    data_dir: str = "data"
    # 32+ random bytes, base64url. Encrypts signing keys at rest and keys client-secret hashes,
    # CSRF tokens and cookies. Empty: generated once into `data_dir/secret.key`.
    secret_key: str = ""
    # Algorithm of newly generated signing keys.
    signing_alg: str = "ES256"
    # Seconds between publishing a rotated key in JWKS and signing with it.
    key_activation_delay: int = 300
    # Seconds a worker keeps keys and clients cached before re-reading the store.
    cache_seconds: int = 5
    # Token lifetimes in seconds (a client may override the first three).
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 86400
    code_ttl: int = 60
    # Browser session lifetime and the pending-login (interaction) lifetime, in seconds.
    session_ttl: int = 14 * 86400            # with "keep me signed in"
    short_session_ttl: int = 12 * 3600       # without it (the cookie also ends with the browser)
    interaction_ttl: int = 900
    # argon2id parameters; raising them rehashes a user's password at their next login.
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # Hashes computed at once per worker; 0: cores / workers (set by `serve`), or all cores.
    hash_concurrency: int = 0
    # Threads per worker for blocking work (database transactions, password hashing).
    worker_threads: int = 40
    # Cookie name prefix.
    cookie_name: str = "idbroker"
    # Timeout for back-channel logout deliveries, seconds.
    backchannel_timeout: float = 5.0
    # Log level for the `idbroker` logger.
    log_level: str = "INFO"

    # -- mail ----------------------------------------------------------------------------------
    # "console" (development: logged and written as .eml files to mail_dir) or "smtp".
    mail_backend: str = "console"
    mail_from: str = "idbroker <no-reply@localhost>"
    mail_dir: str = ""  # default: data_dir/mail
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls, ssl or none
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: float = 10.0

    # -- sign-up, verification, recovery ----------------------------------------------------
    signup_enabled: bool = True
    # Users must verify their address before the broker returns them to an application.
    require_email_verification: bool = True
    # Profile fields asked at sign-up: given_name, family_name, locale, and custom attributes.
    signup_fields: list[str] = dataclasses.field(default_factory=lambda: ["given_name", "family_name"])
    # Custom attributes as "name:type" (type text or bool), e.g. "newsletter:bool".
    custom_attributes: list[str] = dataclasses.field(default_factory=list)
    password_min_length: int = 8
    password_max_length: int = 128
    verification_ttl: int = 900
    reset_ttl: int = 1800
    resend_interval: int = 60

    # -- multi-factor authentication and account protection ----------------------------------
    # off: never asked; optional: users who enrolled a factor must use it; required: everyone
    # enrols during login. A client may set its own (clients --mfa).
    mfa_policy: str = "optional"
    mfa_remember_days: int = 30          # "remember this device"; 0 disables the option
    totp_issuer: str = "idbroker"        # the name authenticator apps show
    webauthn_rp_id: str = ""             # default: the issuer's host
    webauthn_rp_name: str = "idbroker"
    sms_backend: str = "console"         # console (log + file), webhook or sns
    sms_webhook_url: str = ""
    sms_webhook_secret: str = ""         # HMAC-SHA256 signature header key for the webhook
    sns_region: str = "us-east-1"
    sns_endpoint_url: str = ""           # e.g. a local moto server in tests
    lockout_threshold: int = 5           # failed sign-ins before delays and a temporary lock
    lockout_max_seconds: int = 900       # the longest lock
    ip_failure_threshold: int = 30       # failed sign-ins from one address before it is slowed
    breached_passwords: bool = True      # refuse passwords from the shipped breached/common list
    breached_range_url: str = ""         # optional k-anonymity range API (Pwned Passwords protocol)

    # -- terms of service ---------------------------------------------------------------------
    # Empty: no terms. Changing the version makes every user accept the new text.
    terms_version: str = ""
    terms_file: str = ""  # plain text or Markdown-like text shown on the terms page

    # -- look and languages -----------------------------------------------------------------
    themes_dir: str = ""  # operator templates/CSS/images overriding the built-in ones
    theme: str = ""       # a theme folder under themes_dir
    theme_primary_color: str = "#2557d6"
    theme_background: str = "#f4f5f7"
    theme_font: str = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
    theme_radius: str = "8px"
    theme_logo_url: str = ""
    default_locale: str = "en"

    # -- derived -------------------------------------------------------------------------
    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'idbroker.db'}"

    def secret_bytes(self) -> bytes:
        return _b64decode(self.secret_key)

    def ensure_secret_key(self) -> None:
        """Load or create `data_dir/secret.key` when no secret key is configured."""
        if self.secret_key:
            return
        path = Path(self.data_dir) / "secret.key"
        if path.exists():
            self.secret_key = path.read_text().strip()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        value = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        self.secret_key = value

    def validate(self) -> None:
        problems: list[str] = []
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"issuer must be an absolute http(s) URL, got {self.issuer!r}")
        elif parts.query or parts.fragment:
            problems.append("issuer must not have a query or fragment (OIDC Discovery §3)")
        elif self.issuer.endswith("/"):
            problems.append("issuer must not end with '/'")
        elif parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            problems.append("issuer must use https except on localhost")
        if self.signing_alg not in SIGNING_ALGS:
            problems.append(f"signing_alg must be one of {', '.join(SIGNING_ALGS)}, got {self.signing_alg!r}")
        if self.database_url and not self.database_url.startswith(("sqlite", "postgresql")):
            problems.append("database_url must be a sqlite:// or postgresql+psycopg:// URL")
        if self.secret_key:
            try:
                if len(_b64decode(self.secret_key)) < 32:
                    problems.append("secret_key must decode to at least 32 bytes")
            except ValueError:
                problems.append("secret_key must be base64url")
        for name in ("access_token_ttl", "id_token_ttl", "refresh_token_ttl", "code_ttl", "session_ttl",
                     "short_session_ttl", "interaction_ttl", "argon2_time_cost", "argon2_parallelism",
                     "worker_threads"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be a positive integer")
        if self.code_ttl > 600:
            problems.append("code_ttl must be at most 600 seconds (RFC 6749 §4.1.2)")
        if self.argon2_memory_kib < 8 * 1024:
            problems.append("argon2_memory_kib must be at least 8192")
        if self.mail_backend not in ("console", "smtp"):
            problems.append("mail_backend must be console or smtp")
        if self.smtp_security not in ("starttls", "ssl", "none"):
            problems.append("smtp_security must be starttls, ssl or none")
        if not 1 <= self.smtp_port <= 65535:
            problems.append("smtp_port must be a TCP port")
        if self.password_min_length < 8:
            problems.append("password_min_length must be at least 8 (NIST SP 800-63B)")
        if self.password_max_length < 64 or self.password_max_length < self.password_min_length:
            problems.append("password_max_length must be at least 64 and at least password_min_length")
        for field_name in self.signup_fields:
            if field_name not in ("given_name", "family_name", "locale", "phone_number") and \
                    field_name not in [a.split(":")[0] for a in self.custom_attributes]:
                problems.append(f"signup field {field_name!r} is neither a standard field nor a custom attribute")
        for attr in self.custom_attributes:
            attr_name, _, kind = attr.partition(":")
            if not attr_name.isidentifier() or kind not in ("text", "bool"):
                problems.append(f"custom attribute {attr!r} must be name:text or name:bool")
        if self.terms_version and self.terms_file and not Path(self.terms_file).is_file():
            problems.append(f"terms_file {self.terms_file} does not exist")
        if not _COLOR_RE.match(self.theme_primary_color) or not _COLOR_RE.match(self.theme_background):
            problems.append("theme colours must be #rgb or #rrggbb")
        if any(ch in self.theme_font + self.theme_radius for ch in ";{}<>\\"):
            problems.append("theme_font and theme_radius must not contain ; { } < > or backslashes")
        if self.theme and (not self.themes_dir or not (Path(self.themes_dir) / self.theme).is_dir()):
            problems.append(f"theme {self.theme!r} is not a folder of themes_dir")
        if self.mfa_policy not in ("off", "optional", "required"):
            problems.append("mfa_policy must be off, optional or required")
        rp_id, host = self.webauthn_rp_id.lower(), (parts.hostname or "").lower()
        if rp_id and host != rp_id and not host.endswith("." + rp_id):
            problems.append("webauthn_rp_id must be the issuer's host or a domain it belongs to (WebAuthn §5.1.3)")
        if self.sms_backend not in ("console", "webhook", "sns"):
            problems.append("sms_backend must be console, webhook or sns")
        if self.sms_backend == "webhook" and not self.sms_webhook_url.startswith("https://") and \
                not self.sms_webhook_url.startswith("http://127.0.0.1"):
            problems.append("sms_webhook_url must be an https URL")
        if self.lockout_threshold < 1 or self.lockout_max_seconds < 1 or self.ip_failure_threshold < 1:
            problems.append("lockout_threshold, lockout_max_seconds and ip_failure_threshold must be positive")
        if self.breached_range_url and urlsplit(self.breached_range_url).scheme not in ("http", "https"):
            problems.append("breached_range_url must be an http(s) URL")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
        if self.key_activation_delay < 0:
            problems.append("key_activation_delay must be zero or positive")
        if problems:
            raise SettingsError(problems)


def _b64decode(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except Exception as exc:  # binascii.Error
        raise ValueError(str(exc)) from exc


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any, problems: list[str]) -> Any:
    kind = type(getattr(Settings(), name))
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    try:
        if kind is bool:
            if str(raw).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is list:
            if isinstance(raw, str):
                return [item.strip() for item in raw.split(",") if item.strip()]
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        problems.append(f"{name} must be {kind.__name__}, got {raw!r}")
        return None


def _flatten(data: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and key not in _FIELDS:
            _flatten(value, out)
        else:
            out[key] = value


def load_settings(config_file: str | None = None, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build validated settings; raises SettingsError listing every problem."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    values: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError([f"config file {path} does not exist"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError([f"config file {path} is not valid TOML: {exc}"]) from None
        flat: dict[str, Any] = {}
        _flatten(raw, flat)
        for key, value in flat.items():
            if key not in _FIELDS:
                problems.append(f"unknown option {key!r} in {path}")
                continue
            values[key] = _coerce(key, value, problems)
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name.startswith("test_"):
            continue  # the test harness's own variables
        if name not in _FIELDS:
            problems.append(f"unknown environment variable {key}")
            continue
        values[name] = _coerce(name, value, problems)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if problems:
        raise SettingsError(problems)
    settings = Settings(**values)
    settings.validate()
    return settings
