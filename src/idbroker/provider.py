"""The services of one running broker, built once from settings and shared by every request."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from .accounts.breached import BreachedPasswords, RangeChecker
from .accounts.lifecycle import AccountService
from .accounts.one_time import OneTimeTokens
from .accounts.password_ways import LocalAccounts, PasswordSignIn
from .accounts.passwords import Passwords
from .accounts.policy import PasswordPolicy
from .accounts.provisioning import Provisioning
from .accounts.sessions import SessionService
from .accounts.throttle import LoginThrottle, RateLimiter
from .accounts.users import UserService
from .audit import Audit
from .clients.registration import DynamicRegistration, RegistrationPolicy
from .clients.registry import ClientRegistry
from .credentials.aws import AwsCredentials
from .credentials.roles import RoleRules
from .federation.linking import Linking
from .federation.realm import DirectoryPasswords
from .federation.registry import OnFirstUse, SeenAssertions, UpstreamRegistry
from .keys.keystore import KeyStore
from .mfa.base import Factor
from .mfa.codes import EmailFactor, SmsFactor
from .mfa.factors import FACTORS
from .mfa.service import MfaService
from .mfa.totp import TotpFactor
from .mfa.webauthn import Passkeys, WebAuthnFactor
from .migration.lazy import LazyMigration
from .migration.sources import SourceRegistry
from .notify.mail import Mailer, make_mailer
from .notify.sms import SmsSender, make_sms_sender
from .oauth2.client_auth import ClientAuthenticator
from .oauth2.device_codes import DeviceCodes
from .oauth2.dpop import DpopProofs
from .oauth2.grant_store import GrantStore
from .oauth2.grants import AuthorizationCodeGrant, ClientCredentialsGrant, GrantHandler, RefreshTokenGrant
from .oauth2.grants.device_code import DeviceCodeGrant
from .oauth2.grants.token_exchange import TokenExchangeGrant
from .oauth2.pushed_requests import AuthorizationRequests
from .oauth2.request_objects import RequestObjects
from .oauth2.tokens import AccessTokens
from .oauth2.used_jtis import UsedJtis
from .oidc.backchannel import SignOut
from .oidc.id_token import IdTokens
from .security import KeyedHasher, derive_key
from .settings import Settings
from .store.db import Database
from .web import metrics
from .web.mail_texts import MailTexts

if TYPE_CHECKING:
    import httpx


class Provider:
    def __init__(self, settings: Settings, db: Database | None = None):
        settings.ensure_secret_key()
        self.settings = settings
        self.issuer = settings.issuer
        self.db = db or Database(settings.resolved_database_url)
        master = settings.secret_bytes()
        self.csrf_key = derive_key(master, "idbroker csrf")
        max_ttl = max(settings.access_token_ttl, settings.id_token_ttl, 3600)
        self.keys = KeyStore(self.db, master, default_alg=settings.signing_alg,
                             activation_delay=settings.key_activation_delay, max_token_ttl=max_ttl,
                             cache_seconds=settings.cache_seconds)
        self.clients = ClientRegistry(self.db, KeyedHasher(derive_key(master, "idbroker client secrets")),
                                      cache_seconds=settings.cache_seconds)
        self.grants = GrantStore(self.db)
        self.access_tokens = AccessTokens(self.issuer, self.keys, self.grants)
        self.id_tokens = IdTokens(self.issuer, self.keys, derive_key(master, "idbroker pairwise subjects"))
        self.client_auth = ClientAuthenticator(self.clients, self.endpoint("token"), self.issuer)

    def endpoint(self, name: str) -> str:
        return self.issuer + ENDPOINTS[name]

    @cached_property
    def registration(self) -> DynamicRegistration:
        """RFC 7591 / 7592 dynamic client registration (POST /oauth2/register)."""
        s = self.settings
        policy = RegistrationPolicy.from_settings(s.registration_allowed_scopes, s.registration_software_statement_jwks)
        return DynamicRegistration(self.db, self.clients, self.clients.hasher, policy,
                                   lambda client_id: f"{self.endpoint('register')}/{client_id}",
                                   fetch=lambda uri: self.clients.fetch(uri))

    @cached_property
    def passwords(self) -> Passwords:
        s = self.settings
        return Passwords(s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism, s.hash_concurrency)

    @cached_property
    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy(self.settings.password_min_length, self.settings.password_max_length,
                              breached=self.breached if self.settings.breached_passwords else None)

    @cached_property
    def breached(self) -> BreachedPasswords:
        url = self.settings.breached_range_url
        return BreachedPasswords(online=RangeChecker(url) if url else None)

    @cached_property
    def provisioning(self) -> Provisioning:
        """SCIM 2.0 users and groups (endpoints/scim.py)."""
        return Provisioning(self.db, self.accounts)

    @cached_property
    def limiter(self) -> RateLimiter:
        return RateLimiter(self.db)

    @cached_property
    def login_throttle(self) -> LoginThrottle:
        s = self.settings
        return LoginThrottle(self.db, threshold=s.lockout_threshold, max_seconds=s.lockout_max_seconds,
                             ip_threshold=s.ip_failure_threshold)

    @cached_property
    def users(self) -> UserService:
        return UserService(self.db, self.passwords, self.password_policy)

    @cached_property
    def accounts(self) -> AccountService:
        return AccountService(self.db, self.passwords, self.password_policy, self.one_time, self.signout, self.grants,
                              verification_ttl=self.settings.signup.verification_ttl)

    @cached_property
    def one_time(self) -> OneTimeTokens:
        return OneTimeTokens(self.db, derive_key(self.settings.secret_bytes(), "idbroker one-time codes"))

    @cached_property
    def audit(self) -> Audit:
        labels = {kind: factor.label for kind, factor in FACTORS.items()}
        return Audit(self.db, self.mailer, MailTexts(self.settings.look), issuer=self.issuer, method_labels=labels,
                     on_record=metrics.audit_event)

    @cached_property
    def mfa(self) -> MfaService:
        return MfaService(self.db, self.settings.mfa_remember_days, master=self.settings.secret_bytes())

    @cached_property
    def factors(self) -> dict[str, Factor]:
        """One built instance of every kind of mfa.factors.FACTORS."""
        mfa = self.settings.mfa
        codes = (self.mfa, self.one_time, self.limiter, self.settings.signup)
        built: list[Factor] = [
            TotpFactor(self.mfa, mfa),
            SmsFactor(self.sms, *codes, names=mfa, issuer=self.issuer),
            EmailFactor(self.mailer, *codes),
            WebAuthnFactor(self.mfa, self.passkeys),
        ]
        return {f.kind: f for f in built}

    @cached_property
    def passkeys(self) -> Passkeys:
        return Passkeys(self.db, self.settings)

    @cached_property
    def sms(self) -> SmsSender:
        return make_sms_sender(self.settings)

    @cached_property
    def grant_handlers(self) -> dict[str, GrantHandler]:
        """One built handler of every grant type of oauth2.grants.GRANTS, for the token endpoint."""
        tokens = self.settings.tokens
        user = (self.grants, self.users, self.access_tokens, self.id_tokens, tokens)
        built: list[GrantHandler] = [AuthorizationCodeGrant(*user), RefreshTokenGrant(*user),
                                     ClientCredentialsGrant(self.access_tokens, tokens),
                                     TokenExchangeGrant(self.access_tokens, self.id_tokens, self.keys, self.clients,
                                                        self.db, self.audit, tokens, issuer=self.issuer),
                                     DeviceCodeGrant(*user, devices=self.device_codes)]
        return {g.grant_type: g for g in built}

    @cached_property
    def signout(self) -> SignOut:
        return SignOut(self.sessions, self.grants, self.clients, self.keys, issuer=self.issuer,
                       timeout=self.settings.sessions.backchannel_timeout, subject=self.id_tokens.subject)

    @cached_property
    def mailer(self) -> Mailer:
        return make_mailer(self.settings.mail, self.settings.data_dir)

    @cached_property
    def upstreams(self) -> UpstreamRegistry:
        """The configured upstream providers; a kind's class takes what it names of these."""
        offered = {"http": OnFirstUse(_upstream_client), "replay": SeenAssertions(self.db), "issuer": self.issuer}
        return UpstreamRegistry(self.db, self.settings.secret_bytes(), offered,
                                cache_seconds=self.settings.cache_seconds)

    @cached_property
    def password_sign_in(self) -> PasswordSignIn:
        """The ways a password typed on the sign-in page is checked, in order
        (accounts/password_ways.py)."""
        return PasswordSignIn([
            DirectoryPasswords(self.upstreams, self.linking),  # home-realm discovery: a directory first
            LocalAccounts(self.users),
            self.lazy_migration,  # addresses no local account has: the legacy sources (migration/)
        ])

    @cached_property
    def migration_sources(self) -> SourceRegistry:
        """The legacy user stores asked for unknown addresses (`idbroker sources`)."""
        return SourceRegistry(self.db, self.settings.secret_bytes())

    @cached_property
    def lazy_migration(self) -> LazyMigration:
        return LazyMigration(self.migration_sources, self.users, self.audit)

    @cached_property
    def linking(self) -> Linking:
        return Linking(self.db, self.users, passkey_sign_in=self.passkeys.available)

    @cached_property
    def role_rules(self) -> RoleRules:
        """Which AWS role a user may assume (`idbroker roles`)."""
        return RoleRules(self.db)

    @cached_property
    def aws_credentials(self) -> AwsCredentials:
        """The `aws` credential issuer (credentials/aws.py) behind POST /credentials/aws."""
        return AwsCredentials(self.role_rules, self.keys, self.settings.credentials, issuer=self.issuer)

    @cached_property
    def device_codes(self) -> DeviceCodes:
        """RFC 8628 device authorizations (/oauth2/device_authorization, /device)."""
        return DeviceCodes(self.db, self.issuer + "/device")

    @cached_property
    def used_jtis(self) -> UsedJtis:
        return UsedJtis(self.db)

    @cached_property
    def authorization_requests(self) -> AuthorizationRequests:
        """PAR (RFC 9126) and request objects (RFC 9101) before the authorization checks."""
        objects = RequestObjects(self.issuer, self.used_jtis, self.keys.decrypt)  # decrypt: RFC 9101 §6.1
        return AuthorizationRequests(self.db, self.clients, objects,
                                     par_required=self.settings.par_required)

    @cached_property
    def dpop(self) -> DpopProofs:
        """DPoP proofs (RFC 9449); nonces only with the `dpop_nonce` setting."""
        key = derive_key(self.settings.secret_bytes(), "idbroker dpop nonces") if self.settings.dpop_nonce else None
        return DpopProofs(self.used_jtis, key)

    @cached_property
    def sessions(self) -> SessionService:
        return SessionService(self.db, self.settings.session_ttl)


ENDPOINTS = {
    "authorize": "/oauth2/authorize",
    "token": "/oauth2/token",
    "userinfo": "/oauth2/userinfo",
    "revoke": "/oauth2/revoke",
    "introspect": "/oauth2/introspect",
    "par": "/oauth2/par",
    "device_authorization": "/oauth2/device_authorization",
    "register": "/oauth2/register",  # RFC 7591 §3 (on when the setting `registration` is open or token)
    "logout": "/oauth2/logout",
    "jwks": "/.well-known/jwks.json",
    "discovery": "/.well-known/openid-configuration",
    "login": "/login",
    "consent": "/consent",
}


def _upstream_client() -> httpx.AsyncClient:
    from .web.upstream_http import upstream_client  # with the first provider built: httpx is ~8 MB

    return upstream_client()
