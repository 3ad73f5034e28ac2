"""Every option of the broker, grouped in sections, read from TOML and ``IDBROKER_*`` variables.

Precedence: built-in defaults < TOML file (``--config`` or ``IDBROKER_CONFIG``) < environment.

Sections. Each concern has its own small dataclass (`TokenSettings`, `MailSettings`, ...) that
checks itself (`problems`), and a service is handed its section rather than the whole object
(`Mailer(settings.mail)`). `Settings` holds one instance of each under its name
(`settings.tokens.code_ttl`) and also answers every option by its flat name
(`settings.code_ttl`), which is what the TOML file, the environment and older code use.

Names. Option names are unique across sections, so a flat name says where it lives:
``IDBROKER_ACCESS_TOKEN_TTL`` sets `tokens.access_token_ttl`. In the TOML file an option may
stand at the top level or inside any table (``[tokens] access_token_ttl = 600``): table names
group, they do not qualify, so files written before the sections existed keep working.

Lists of tables. Extension points configured by the operator as several entries - upstream
identity providers, migration sources - are TOML arrays of tables (``[[upstreams]]``,
``[[migration.sources]]``). They are kept as they are written (a list of dicts each with an `id`
and a `kind`), for the extension that owns the kind to check; unknown arrays of tables are an
error, not silently dropped.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

ENV_PREFIX = "IDBROKER_"
_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SIGNING_ALGS = ("ES256", "RS256")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class SettingsError(Exception):
    """Configuration is invalid; ``problems`` holds one clear message per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Section:
    """One concern's options. `problems` sees the whole settings for checks across sections."""

    name: ClassVar[str]

    def problems(self, settings: Settings) -> list[str]:
        return []

    @staticmethod
    def positive(section: Any, *names: str) -> list[str]:
        return [f"{n} must be a positive integer" for n in names if getattr(section, n) <= 0]


@dataclass
class ServerSettings(Section):
    name: ClassVar[str] = "server"
    # Public URL of the broker: the `iss` of every token. No trailing slash.
    issuer: str = "http://127.0.0.1:8000"
    # SQLAlchemy URL. Empty means SQLite in `data_dir`.
    database_url: str = ""
    # Where the embedded SQLite database and the generated secret key live.
    data_dir: str = "data"
    # TCP port `idbroker serve` listens on (and `idbroker demo` finds the broker at) unless --port.
    port: int = 8000
    # 32+ random bytes, base64url. Encrypts signing keys at rest and keys client-secret hashes,
    # CSRF tokens and cookies. Empty: generated once into `data_dir/secret.key`.
    secret_key: str = ""
    # Seconds a worker keeps keys and clients cached before re-reading the store.
    cache_seconds: int = 5
    # Threads per worker for blocking work (database transactions, password hashing).
    worker_threads: int = 40
    # Cookie name prefix.
    cookie_name: str = "idbroker"
    # Log level for the `idbroker` logger.
    log_level: str = "INFO"
    # Seconds a client has to send its request headers (the server cuts it off then) and its body.
    header_read_timeout: int = 10
    body_read_timeout: float = 10.0
    # Requests one client address may have in progress per worker; more get 429 (web/limits.py).
    max_requests_per_address: int = 64
    # RFC 9126: every client must push its authorization requests (/oauth2/par), not only those
    # registered with --require-par.
    par_required: bool = False
    # RFC 9449 §8: DPoP proofs must carry a nonce the broker provides (DPoP-Nonce header).
    dpop_nonce: bool = False

    def problems(self, settings: Settings) -> list[str]:
        out: list[str] = []
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            out.append(f"issuer must be an absolute http(s) URL, got {self.issuer!r}")
        elif parts.query or parts.fragment:
            out.append("issuer must not have a query or fragment (OIDC Discovery §3)")
        elif self.issuer.endswith("/"):
            out.append("issuer must not end with '/'")
        elif parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            out.append("issuer must use https except on localhost")
        if self.database_url and not self.database_url.startswith(("sqlite", "postgresql")):
            out.append("database_url must be a sqlite:// or postgresql+psycopg:// URL")
        if self.secret_key:
            try:
                if len(_b64decode(self.secret_key)) < 32:
                    out.append("secret_key must decode to at least 32 bytes")
            except ValueError:
                out.append("secret_key must be base64url")
        out += self.positive(self, "worker_threads", "header_read_timeout", "max_requests_per_address")
        if self.body_read_timeout <= 0:
            out.append("body_read_timeout must be positive")
        if self.cache_seconds < 0:
            out.append("cache_seconds must be zero or positive")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            out.append("log_level must be DEBUG, INFO, WARNING or ERROR")
        return out


@dataclass
class KeySettings(Section):
    name: ClassVar[str] = "keys"
    # Algorithm of access tokens and of newly generated signing keys.
    signing_alg: str = "ES256"
    # Seconds between publishing a rotated key in JWKS and signing with it.
    key_activation_delay: int = 300

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.signing_alg not in SIGNING_ALGS:
            out.append(f"signing_alg must be one of {', '.join(SIGNING_ALGS)}, got {self.signing_alg!r}")
        if self.key_activation_delay < 0:
            out.append("key_activation_delay must be zero or positive")
        return out


@dataclass
class TokenSettings(Section):
    name: ClassVar[str] = "tokens"
    # Lifetimes in seconds (a client may override the first three).
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 86400
    code_ttl: int = 60

    def problems(self, settings: Settings) -> list[str]:
        out = self.positive(self, "access_token_ttl", "id_token_ttl", "refresh_token_ttl", "code_ttl")
        if self.code_ttl > 600:
            out.append("code_ttl must be at most 600 seconds (RFC 6749 §4.1.2)")
        return out


@dataclass
class SessionSettings(Section):
    name: ClassVar[str] = "sessions"
    # Browser session lifetime and the pending-login (interaction) lifetime, in seconds.
    session_ttl: int = 14 * 86400            # with "keep me signed in"
    short_session_ttl: int = 12 * 3600       # without it (the cookie also ends with the browser)
    interaction_ttl: int = 900
    # Timeout for back-channel logout deliveries, seconds.
    backchannel_timeout: float = 5.0

    def problems(self, settings: Settings) -> list[str]:
        out = self.positive(self, "session_ttl", "short_session_ttl", "interaction_ttl")
        if self.backchannel_timeout <= 0:
            out.append("backchannel_timeout must be positive")
        return out


@dataclass
class PasswordSettings(Section):
    name: ClassVar[str] = "passwords"
    # argon2id parameters; raising them rehashes a user's password at their next login.
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # Hashes computed at once per worker; 0: cores / workers (set by `serve`), or all cores.
    hash_concurrency: int = 0
    password_min_length: int = 8
    password_max_length: int = 128
    breached_passwords: bool = True      # refuse passwords from the shipped breached/common list
    breached_range_url: str = ""         # optional k-anonymity range API (Pwned Passwords protocol)

    def problems(self, settings: Settings) -> list[str]:
        out = self.positive(self, "argon2_time_cost", "argon2_parallelism")
        if self.argon2_memory_kib < 8 * 1024:
            out.append("argon2_memory_kib must be at least 8192")
        if self.hash_concurrency < 0:
            out.append("hash_concurrency must be zero or positive")
        if self.password_min_length < 8:
            out.append("password_min_length must be at least 8 (NIST SP 800-63B)")
        if self.password_max_length < 64 or self.password_max_length < self.password_min_length:
            out.append("password_max_length must be at least 64 and at least password_min_length")
        if self.breached_range_url and urlsplit(self.breached_range_url).scheme not in ("http", "https"):
            out.append("breached_range_url must be an http(s) URL")
        return out


@dataclass
class MailSettings(Section):
    name: ClassVar[str] = "mail"
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

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.mail_backend not in ("console", "smtp"):
            out.append("mail_backend must be console or smtp")
        if self.smtp_security not in ("starttls", "ssl", "none"):
            out.append("smtp_security must be starttls, ssl or none")
        if not 1 <= self.smtp_port <= 65535:
            out.append("smtp_port must be a TCP port")
        if self.smtp_timeout <= 0:
            out.append("smtp_timeout must be positive")
        return out


@dataclass
class SignupSettings(Section):
    name: ClassVar[str] = "signup"
    signup_enabled: bool = True
    # Users must verify their address before the broker returns them to an application.
    require_email_verification: bool = True
    # Profile fields asked at sign-up: given_name, family_name, locale, and custom attributes.
    signup_fields: list[str] = dataclasses.field(default_factory=lambda: ["given_name", "family_name"])
    # Custom attributes as "name:type" (type text or bool), e.g. "newsletter:bool".
    custom_attributes: list[str] = dataclasses.field(default_factory=list)
    verification_ttl: int = 900
    reset_ttl: int = 1800
    resend_interval: int = 60

    def problems(self, settings: Settings) -> list[str]:
        out = self.positive(self, "verification_ttl", "reset_ttl")
        if self.resend_interval < 0:
            out.append("resend_interval must be zero or positive")
        custom = [a.split(":")[0] for a in self.custom_attributes]
        for field_name in self.signup_fields:
            if field_name not in ("given_name", "family_name", "locale", "phone_number") and field_name not in custom:
                out.append(f"signup field {field_name!r} is neither a standard field nor a custom attribute")
        for attr in self.custom_attributes:
            attr_name, _, kind = attr.partition(":")
            if not attr_name.isidentifier() or kind not in ("text", "bool"):
                out.append(f"custom attribute {attr!r} must be name:text or name:bool")
        return out


@dataclass
class MfaSettings(Section):
    name: ClassVar[str] = "mfa"
    # off: never asked; optional: users who enrolled a factor must use it; required: everyone
    # enrols during login. A client may set its own (clients --mfa).
    mfa_policy: str = "optional"
    mfa_remember_days: int = 30          # "remember this device"; 0 disables the option
    totp_issuer: str = "idbroker"        # the name authenticator apps show
    webauthn_rp_id: str = ""             # default: the issuer's host
    webauthn_rp_name: str = "idbroker"

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.mfa_policy not in ("off", "optional", "required"):
            out.append("mfa_policy must be off, optional or required")
        if self.mfa_remember_days < 0:
            out.append("mfa_remember_days must be zero or positive")
        rp_id, host = self.webauthn_rp_id.lower(), (urlsplit(settings.issuer).hostname or "").lower()
        if rp_id and host != rp_id and not host.endswith("." + rp_id):
            out.append("webauthn_rp_id must be the issuer's host or a domain it belongs to (WebAuthn §5.1.3)")
        return out


@dataclass
class SmsSettings(Section):
    name: ClassVar[str] = "sms"
    sms_backend: str = "console"         # console (log + file), webhook or sns
    sms_webhook_url: str = ""
    sms_webhook_secret: str = ""         # HMAC-SHA256 signature header key for the webhook
    sns_region: str = "us-east-1"
    sns_endpoint_url: str = ""           # e.g. a local moto server in tests

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.sms_backend not in ("console", "webhook", "sns"):
            out.append("sms_backend must be console, webhook or sns")
        if self.sms_backend == "webhook" and not self.sms_webhook_url.startswith("https://") and \
                not self.sms_webhook_url.startswith("http://127.0.0.1"):
            out.append("sms_webhook_url must be an https URL")
        return out


@dataclass
class ProtectionSettings(Section):
    name: ClassVar[str] = "protection"
    lockout_threshold: int = 5           # failed sign-ins before delays and a temporary lock
    lockout_max_seconds: int = 900       # the longest lock
    ip_failure_threshold: int = 30       # failed sign-ins from one address before it is slowed

    def problems(self, settings: Settings) -> list[str]:
        if self.lockout_threshold < 1 or self.lockout_max_seconds < 1 or self.ip_failure_threshold < 1:
            return ["lockout_threshold, lockout_max_seconds and ip_failure_threshold must be positive"]
        return []


@dataclass
class TermsSettings(Section):
    name: ClassVar[str] = "terms"
    # Empty: no terms. Changing the version makes every user accept the new text.
    terms_version: str = ""
    terms_file: str = ""  # plain text or Markdown-like text shown on the terms page

    def problems(self, settings: Settings) -> list[str]:
        if self.terms_version and self.terms_file and not Path(self.terms_file).is_file():
            return [f"terms_file {self.terms_file} does not exist"]
        return []


@dataclass
class LookSettings(Section):
    name: ClassVar[str] = "look"
    themes_dir: str = ""  # operator templates/CSS/images overriding the built-in ones
    theme: str = ""       # a theme folder under themes_dir
    theme_primary_color: str = "#2557d6"
    theme_background: str = "#f4f5f7"
    theme_font: str = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
    theme_radius: str = "8px"
    theme_logo_url: str = ""
    default_locale: str = "en"

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if not _COLOR_RE.match(self.theme_primary_color) or not _COLOR_RE.match(self.theme_background):
            out.append("theme colours must be #rgb or #rrggbb")
        if any(ch in self.theme_font + self.theme_radius for ch in ";{}<>\\"):
            out.append("theme_font and theme_radius must not contain ; { } < > or backslashes")
        if self.theme and (not self.themes_dir or not (Path(self.themes_dir) / self.theme).is_dir()):
            out.append(f"theme {self.theme!r} is not a folder of themes_dir")
        return out


@dataclass
class HousekeepingSettings(Section):
    name: ClassVar[str] = "housekeeping"
    # Seconds between purges of expired rows (store/housekeeping.py), by one worker at a time; 0: never
    # (then run `idbroker db purge` from cron).
    purge_interval: int = 3600
    # Audit events older than this many days are deleted by the purge.
    audit_retention_days: int = 365

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.purge_interval < 0:
            out.append("purge_interval must be zero (never) or positive")
        if self.audit_retention_days < 1:
            out.append("audit_retention_days must be at least 1")
        return out


@dataclass
class CredentialSettings(Section):
    """Temporary AWS credentials (credentials/aws.py, POST /credentials/aws)."""

    name: ClassVar[str] = "credentials"
    credentials_audience: str = "sts.amazonaws.com"   # `aud` of the web identity tokens
    credentials_max_duration: int = 3600              # longest DurationSeconds asked of STS (900..43200)
    aws_region: str = "us-east-1"
    aws_sts_endpoint: str = ""                        # default https://sts.<aws_region>.amazonaws.com
    # Session tags: "TagKey=claim" (the user's claim value becomes the tag), and the keys that are transitive.
    aws_session_tags: list[str] = dataclasses.field(default_factory=list)
    aws_transitive_tag_keys: list[str] = dataclasses.field(default_factory=list)

    @property
    def sts_endpoint(self) -> str:
        return self.aws_sts_endpoint or f"https://sts.{self.aws_region}.amazonaws.com"

    @property
    def session_tags(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.aws_session_tags if "=" in item)

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if not 900 <= self.credentials_max_duration <= 43200:
            out.append("credentials_max_duration must be between 900 and 43200 seconds (STS limits)")
        if not self.credentials_audience.strip():
            out.append("credentials_audience must not be empty")
        if not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", self.aws_region):
            out.append(f"aws_region {self.aws_region!r} is not an AWS region name")
        url = urlsplit(self.aws_sts_endpoint)
        if self.aws_sts_endpoint and (url.scheme not in ("https", "http") or not url.hostname or
                                      (url.scheme == "http" and url.hostname not in LOOPBACK_HOSTS)):
            out.append("aws_sts_endpoint must be an https URL (http only on a loopback host)")
        for item in self.aws_session_tags:
            key, sep, claim = item.partition("=")
            if not sep or not key.strip() or not claim.strip():
                out.append(f"aws_session_tags entries are TagKey=claim, got {item!r}")
        unknown = set(self.aws_transitive_tag_keys) - set(self.session_tags)
        if unknown:
            out.append(f"aws_transitive_tag_keys names tags not in aws_session_tags: {', '.join(sorted(unknown))}")
        return out


@dataclass
class ObservabilitySettings(Section):
    """Logs, metrics and the reverse proxies in front (web/request_log.py, web/metrics.py, web/proxies.py)."""

    name: ClassVar[str] = "observability"
    log_format: str = "text"             # text, or json: one JSON object a line
    access_log: str = "auto"             # auto (on with log_format json), on or off
    # Who may read /metrics without a token (CIDRs); others need a Bearer token with scope idbroker:metrics.
    metrics_allow: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # Reverse proxies whose X-Forwarded-For/-Proto/-Host and Forwarded headers are believed (CIDRs).
    trusted_proxies: list[str] = dataclasses.field(default_factory=list)
    # OpenTelemetry traces (web/tracing.py; needs the `otel` extra): the OTLP/HTTP traces URL, e.g.
    # http://collector:4318/v1/traces. Empty = off, and then no opentelemetry module is imported.
    otel_endpoint: str = ""
    otel_service_name: str = "idbroker"
    otel_sample_ratio: float = 1.0      # share of new traces kept, 0..1 (a trusted parent's choice wins)

    @property
    def access_log_on(self) -> bool:
        return self.access_log == "on" or (self.access_log == "auto" and self.log_format == "json")

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.log_format not in ("text", "json"):
            out.append("log_format must be text or json")
        if self.access_log not in ("auto", "on", "off"):
            out.append("access_log must be auto, on or off")
        for option in ("metrics_allow", "trusted_proxies"):
            for item in getattr(self, option):
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    out.append(f"{option}: {item!r} is not an IP address or CIDR network")
        if not 0.0 <= self.otel_sample_ratio <= 1.0:
            out.append("otel_sample_ratio must be between 0 and 1")
        if self.otel_endpoint:
            if urlsplit(self.otel_endpoint).scheme not in ("http", "https") or not urlsplit(self.otel_endpoint).netloc:
                out.append("otel_endpoint must be an http(s) URL (the OTLP/HTTP traces endpoint)")
            elif not _otel_installed():
                out.append("otel_endpoint is set but OpenTelemetry is not installed: pip install 'idbroker[otel]'")
        return out


def _otel_installed() -> bool:
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in
                   ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"))
    except (ImportError, ValueError):
        return False


@dataclass
class RegistrationSettings(Section):
    """Dynamic client registration, RFC 7591 / 7592 (clients/registration.py, POST /oauth2/register)."""

    name: ClassVar[str] = "client_registration"
    # off: no registration endpoint; open: anyone may register a client; token: only with an initial
    # access token from `idbroker clients registration-token`.
    registration: str = "off"
    # The scopes a dynamically registered client may ask for (never the broker's own idbroker:* ones).
    registration_allowed_scopes: list[str] = dataclasses.field(
        default_factory=lambda: ["openid", "profile", "email", "phone", "address", "offline_access"])
    # A JWKS file whose keys sign the software statements accepted (RFC 7591 §2.3); empty: none are.
    registration_software_statement_jwks: str = ""

    def problems(self, settings: Settings) -> list[str]:
        out = []
        if self.registration not in ("off", "open", "token"):
            out.append(f"registration must be off, open or token, got {self.registration!r}")
        for scope in self.registration_allowed_scopes:
            if scope.startswith("idbroker:") or scope == "aws.credentials":
                out.append(f"registration_allowed_scopes: {scope!r} is never given to a registered client")
            elif not scope or any(ch in scope for ch in ' "\\') or not scope.isprintable():
                out.append(f"registration_allowed_scopes: {scope!r} is not a scope token")
        path = self.registration_software_statement_jwks
        if path and not Path(path).is_file():
            out.append(f"registration_software_statement_jwks: no file {path}")
        return out


@dataclass
class AdminPageSettings(Section):
    """The admin pages under /admin (pages/admin.py)."""

    name: ClassVar[str] = "admin_pages"
    admin_group: str = "admin"            # users in this group may open /admin
    # The second factor must have been passed at a sign-in at most this many seconds ago.
    admin_step_up_max_age: int = 900

    def problems(self, settings: Settings) -> list[str]:
        out = self.positive(self, "admin_step_up_max_age")
        if not self.admin_group.strip():
            out.append("admin_group must not be empty")
        return out


@dataclass
class AdminApiSettings(Section):
    """The admin API under /admin/api/v1 (endpoints/admin/)."""

    name: ClassVar[str] = "admin_api"
    # The largest body POST /admin/api/v1/users/import takes (bytes; streamed to a temporary file).
    admin_import_max_bytes: int = 50 * 1024 * 1024

    def problems(self, settings: Settings) -> list[str]:
        return self.positive(self, "admin_import_max_bytes")


SECTIONS: tuple[type[Section], ...] = (
    ServerSettings, KeySettings, TokenSettings, SessionSettings, PasswordSettings, MailSettings, SignupSettings,
    MfaSettings, SmsSettings, ProtectionSettings, TermsSettings, LookSettings, HousekeepingSettings,
    CredentialSettings, ObservabilitySettings, RegistrationSettings,
    AdminPageSettings, AdminApiSettings,
)
# Arrays of tables, by their dotted TOML path, and the attribute of Settings that keeps them.
TABLE_LISTS = {"upstreams": "upstreams", "migration.sources": "migration_sources"}

# Every flat option name -> (section attribute, the option's default)
_OWNER: dict[str, tuple[str, Any]] = {}
for _section in SECTIONS:
    _defaults = _section()
    for _f in dataclasses.fields(_section):
        if _f.name in _OWNER:
            raise RuntimeError(f"option {_f.name} is in two sections")
        _OWNER[_f.name] = (_section.name, getattr(_defaults, _f.name))


class _Flat:
    """`settings.code_ttl` reads and writes `settings.tokens.code_ttl`; `Settings.code_ttl` is
    the default."""

    def __init__(self, section: str, option: str, default: Any):
        self.section, self.option, self.default = section, option, default

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.default
        return getattr(obj.__dict__[self.section], self.option)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.__dict__[self.section], self.option, value)


class Settings:
    """The sections, each under its name, and every option by its flat name."""

    server: ServerSettings
    keys: KeySettings
    tokens: TokenSettings
    sessions: SessionSettings
    passwords: PasswordSettings
    mail: MailSettings
    signup: SignupSettings
    mfa: MfaSettings
    sms: SmsSettings
    protection: ProtectionSettings
    terms: TermsSettings
    look: LookSettings
    housekeeping: HousekeepingSettings
    credentials: CredentialSettings

    def __init__(self, upstreams: list[dict[str, Any]] | None = None,
                 migration_sources: list[dict[str, Any]] | None = None, **options: Any):
        unknown = set(options) - set(_OWNER)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for section in SECTIONS:
            mine = {k: v for k, v in options.items() if _OWNER[k][0] == section.name}
            self.__dict__[section.name] = section(**mine)
        self.upstreams: list[dict[str, Any]] = list(upstreams or [])
        self.migration_sources: list[dict[str, Any]] = list(migration_sources or [])

    def sections(self) -> list[Section]:
        return [self.__dict__[s.name] for s in SECTIONS]

    def __repr__(self) -> str:  # never the secrets
        hidden = {"secret_key", "smtp_password", "sms_webhook_secret"}
        shown = {n: ("***" if n in hidden and getattr(self, n) else getattr(self, n)) for n in _OWNER}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

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
        problems = [p for section in self.sections() for p in section.problems(self)]
        for path, attr in TABLE_LISTS.items():
            problems += _table_list_problems(path, getattr(self, attr))
        if problems:
            raise SettingsError(problems)


for _name, (_section_name, _default) in _OWNER.items():
    setattr(Settings, _name, _Flat(_section_name, _name, _default))

def _table_list_problems(path: str, entries: list[dict[str, Any]]) -> list[str]:
    """The checks every entry of an array of tables gets; its kind's own checks come from the
    extension that owns the kind."""
    out: list[str] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        where = f"[[{path}]] entry {number}"
        if not isinstance(entry, dict):
            out.append(f"{where} must be a table")
            continue
        ident, kind = entry.get("id"), entry.get("kind")
        if not isinstance(ident, str) or not _ID_RE.match(ident):
            out.append(f"{where} needs an id of letters, digits, '_', '.' or '-' (at most 64)")
        elif ident in seen:
            out.append(f"{where} repeats the id {ident!r}")
        else:
            seen.add(ident)
        if not isinstance(kind, str) or not kind:
            out.append(f"{where} needs a kind")
    return out


def _b64decode(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except Exception as exc:  # binascii.Error
        raise ValueError(str(exc)) from exc


def _coerce(name: str, raw: Any, problems: list[str], source: str = "") -> Any:
    """`raw` as the option's type; a problem naming the option (and `source`, where it was set)."""
    kind = type(_OWNER[name][1])
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
            if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
                return raw
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            return float(raw)
        if not isinstance(raw, str | int | float):
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError, OverflowError):
        problems.append(f"{name} must be {kind.__name__}, got {raw!r}" + (f" (from {source})" if source else ""))
        return None


def _read_toml(data: dict[str, Any], path: str, flat: dict[str, Any], lists: dict[str, Any],
               problems: list[str], prefix: str = "") -> None:
    """Options wherever they stand (tables only group them); arrays of tables by dotted path."""
    for key, value in data.items():
        dotted = prefix + key
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if dotted in TABLE_LISTS:
                lists[TABLE_LISTS[dotted]] = value
            else:
                problems.append(f"unknown list of tables [[{dotted}]] in {path}")
        elif isinstance(value, dict) and key not in _OWNER:
            _read_toml(value, path, flat, lists, problems, dotted + ".")
        elif key not in _OWNER:
            problems.append(f"unknown option {dotted!r} in {path}")
        else:
            flat[key] = value


CONFIG_OPTIONS = ("--config", "-c")  # the command line's option that names the file (cli/)


def use_config_file(path: str | None) -> None:
    """The configuration file of this process (`idbroker --config FILE ...`), and of the workers
    it starts: they read it from the environment, as `load_settings` does."""
    if path:
        os.environ[ENV_PREFIX + "CONFIG"] = os.path.abspath(path)


def load_settings(config_file: str | None = None, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build validated settings; raises SettingsError listing every problem."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    values: dict[str, Any] = {}
    lists: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError([f"config file {path} does not exist"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError([f"config file {path} cannot be read: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError([f"config file {path} is not valid TOML: {exc}"]) from None
        flat: dict[str, Any] = {}
        _read_toml(raw, path, flat, lists, problems)
        for key, value in flat.items():
            values[key] = _coerce(key, value, problems)
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name.startswith("test_"):
            continue  # the test harness's own variables
        if name not in _OWNER:
            problems.append(f"unknown environment variable {key}")
            continue
        values[name] = _coerce(name, value, problems, key)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**lists, **{k: v for k, v in values.items() if v is not None})
    try:
        settings.validate()
    except SettingsError as exc:
        problems += exc.problems
    if problems:
        raise SettingsError(problems)
    return settings
