"""RFC 8693 OAuth 2.0 Token Exchange: a client trades a token this broker issued for one meant
for another audience, with a narrower scope, optionally on behalf of an actor (delegation).

Policy (per client, `idbroker clients update ID --exchange-audience AUD`):
- only confidential clients allowed the grant type may exchange (RFC 8693 §5: the exchange is
  authorised by who asks, so the client must authenticate);
- the subject (and actor) token must have been issued to this client (its `client_id`, or for an ID
  token its `aud`) or for it (the client among an access token's `aud`): a client cannot trade a
  token it merely found;
- every target (`audience`, `resource`) must be listed for the client (else invalid_target);
- the scope is never wider than the subject token's, the client's, and, for a target that is a
  registered client, that client's; offline_access never (no refresh token: an exchanged token is
  a short-lived derivative of the subject's, and a refresh token would outlive it);
- the new token never outlives the subject token, and carries the subject's grant (`gid`), so
  revoking the subject's grant ends it too;
- every exchange, issued or refused, is audited (audit.TOKEN_EXCHANGED).

Errors follow RFC 8693 §2.2.2: an invalid or unacceptable subject or actor token (expired, revoked,
its user disabled, issued to another client) is invalid_request - that section's MUST - and an
unacceptable target is invalid_target.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from joserfc.errors import JoseError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ...audit import TOKEN_EXCHANGED
from ...store.models import User
from .. import constants as c
from ..errors import (
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenError,
    OAuth2Error,
    UnauthorizedClientError,
)
from .base import ttl

if TYPE_CHECKING:
    from ...audit import Audit
    from ...clients.registry import ClientRegistry
    from ...keys.keystore import KeyStore
    from ...oidc.id_token import IdTokens
    from ...settings import TokenSettings
    from ...store.db import Database
    from ...store.models import Client
    from ..tokens import AccessTokens

# RFC 8693 §3: the token types this broker accepts and issues.
TOKEN_TYPES = (c.TOKEN_TYPE_ACCESS_TOKEN, c.TOKEN_TYPE_ID_TOKEN)
REPEATED = "\x00"  # endpoints/common.py REPEATED: how the token endpoint joins a repeated parameter


class TokenExchangeGrant:
    grant_type = c.GRANT_TOKEN_EXCHANGE
    repeatable: ClassVar[tuple[str, ...]] = ("audience", "resource")  # RFC 8693 §2.1: may be repeated

    def __init__(self, access_tokens: AccessTokens, id_tokens: IdTokens, keys: KeyStore, clients: ClientRegistry,
                 db: Database, audit: Audit, settings: TokenSettings, *, issuer: str):
        self.access_tokens = access_tokens
        self.id_tokens = id_tokens
        self.keys = keys
        self.clients = clients
        self.db = db
        self.audit = audit
        self.settings = settings
        self.issuer = issuer

    async def handle(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """Signature checks, the revocation and user lookups and the audit write: in the thread pool."""
        return await run_in_threadpool(self.audited, client, form)

    def audited(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        seen: dict[str, Any] = {}  # what the audit row names: filled as the request is understood
        try:
            body = self.exchange(client, form, seen)
        except OAuth2Error as err:
            self.audit.record(TOKEN_EXCHANGED, user_id=seen.pop("user_id", None), client_id=client.client_id,
                              outcome="refused", error=err.error, reason=err.description, **seen)
            raise
        self.audit.record(TOKEN_EXCHANGED, user_id=seen.pop("user_id", None), client_id=client.client_id,
                          outcome="issued", **seen)
        return body

    def exchange(self, client: Client, form: dict[str, str], seen: dict[str, Any]) -> dict[str, Any]:
        if self.grant_type not in client.grant_types or client.public:
            raise UnauthorizedClientError("this client may not use token exchange")
        # RFC 8693 §2.1: subject_token and subject_token_type are REQUIRED.
        subject_token, subject_type = form.get("subject_token"), form.get("subject_token_type")
        if not subject_token or not subject_type:
            raise InvalidRequestError("subject_token and subject_token_type are required")
        if subject_type not in TOKEN_TYPES:
            raise InvalidRequestError("unsupported subject_token_type")
        # RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present, and MUST NOT be
        # included otherwise.
        actor_token, actor_type = form.get("actor_token"), form.get("actor_token_type")
        if bool(actor_token) != bool(actor_type):
            raise InvalidRequestError("actor_token and actor_token_type go together")
        if actor_type is not None and actor_type not in TOKEN_TYPES:
            raise InvalidRequestError("unsupported actor_token_type")
        requested_type = form.get("requested_token_type", c.TOKEN_TYPE_ACCESS_TOKEN)
        if requested_type not in TOKEN_TYPES:
            raise InvalidRequestError("unsupported requested_token_type")
        targets = self.targets(form)
        seen.update(subject_token_type=subject_type, requested_token_type=requested_type, audience=targets)

        subject = self.subject(client, subject_token, subject_type)
        seen["user_id"] = subject["_user"].id
        actor = self.verified(client, actor_token, actor_type, what="actor") if actor_token and actor_type else None
        act = delegation(subject, actor)
        if act:
            seen["actor"] = act["sub"]

        # RFC 8707 §2 / RFC 8693 §2.2.2: a target the client may not exchange into is invalid_target.
        refused = [t for t in targets if t not in (client.exchange_audiences or [])]
        if refused:
            raise InvalidTargetError(f"this client may not exchange tokens for {refused[0]}")
        scope = self.scope(client, subject, targets, form.get("scope"), subject_type)
        seen["scope"] = scope

        remaining = int(subject["exp"] - time.time())  # the new token never outlives its subject
        audience: str | list[str] = targets[0] if len(targets) == 1 else targets
        user = subject["_user"]
        if requested_type == c.TOKEN_TYPE_ID_TOKEN:
            # An ID token is for relying parties: only registered clients, only with openid.
            if c.SCOPE_OPENID not in scope.split() or any(self.clients.get(t) is None for t in targets):
                raise InvalidRequestError("an ID token is issued only for registered clients with the openid scope")
            # OIDC Core §8.1: the sub its audience sees (pairwise); one value for every audience.
            subs = {self.id_tokens.subject(self.clients.get(t), user.sub) for t in targets}
            if len(subs) != 1:
                raise InvalidRequestError("these audiences see the user under different subjects (pairwise)")
            lifetime = max(1, min(ttl(self.settings, client, "id_token_ttl"), remaining))
            id_token = self.id_tokens.issue(
                client_id=client.client_id, alg=client.id_token_signed_response_alg, sub=subs.pop(), ttl=lifetime,
                auth_time=subject["auth_time"], sid=subject.get("sid"), acr=subject.get("acr"),
                amr=subject.get("amr"), extra={"act": act} if act else None, audience=audience)
            # RFC 8693 §2.2.1: not an access token, so token_type N_A.
            return {"access_token": id_token, "issued_token_type": c.TOKEN_TYPE_ID_TOKEN, "token_type": "N_A",
                    "expires_in": lifetime, "scope": scope}
        lifetime = max(1, min(ttl(self.settings, client, "access_token_ttl"), remaining))
        at = self.access_tokens.issue(client_id=client.client_id, sub=user.sub, scope=scope, ttl=lifetime,
                                      audience=audience, grant_id=subject.get("gid"),
                                      auth_time=subject.get("auth_time"), acr=subject.get("acr"),
                                      amr=subject.get("amr"), sid=subject.get("sid"), idp=subject.get("idp"),
                                      act=act)
        return {"access_token": at.token, "issued_token_type": c.TOKEN_TYPE_ACCESS_TOKEN, "token_type": "Bearer",
                "expires_in": at.expires_in, "scope": scope}

    @staticmethod
    def targets(form: dict[str, str]) -> list[str]:
        """RFC 8693 §2.1 audience and RFC 8707 resource (each may be repeated), in order."""
        audiences = form["audience"].split(REPEATED) if "audience" in form else []
        resources = form["resource"].split(REPEATED) if "resource" in form else []
        for resource in resources:
            if "#" in resource or "://" not in resource:  # RFC 8707 §2
                raise InvalidTargetError("resource must be an absolute URI without a fragment")
        targets = list(dict.fromkeys(audiences + resources))
        if not targets:
            raise InvalidRequestError("audience or resource is required: tokens are exchanged for a named target")
        return targets

    def scope(self, client: Client, subject: dict[str, Any], targets: list[str], requested: str | None,
              subject_type: str) -> str:
        """Never wider than the subject token, the client, or a target that is a registered client
        (RFC 8693 §2.1 scope; RFC 6749 §3.3)."""
        held = subject.get("scope", "").split() if subject_type == c.TOKEN_TYPE_ACCESS_TOKEN else [c.SCOPE_OPENID]
        allowed = [s for s in held if s in client.scopes and s != c.SCOPE_OFFLINE]
        for target in targets:
            registered = self.clients.get(target)
            if registered is not None:
                allowed = [s for s in allowed if s in registered.scopes]
        if requested is None:
            return " ".join(allowed)
        asked = list(dict.fromkeys(requested.split()))
        if not asked or any(s not in allowed for s in asked):
            raise InvalidScopeError("the requested scope exceeds what the subject token and the target allow")
        return " ".join(asked)

    def subject(self, client: Client, token: str, token_type: str) -> dict[str, Any]:
        """The subject token's claims, with its enabled user as claims["_user"]."""
        claims = self.verified(client, token, token_type, what="subject")
        if token_type == c.TOKEN_TYPE_ACCESS_TOKEN and "gid" not in claims and claims["sub"] == claims.get("client_id"):
            raise InvalidRequestError("the subject token does not stand for a user")
        if "_user" not in claims:  # an ID token: no grant to check, but its user must still be active
            with self.db.session(write=False) as s:
                user = s.scalars(select(User).where(User.sub == claims["sub"])).first()
            if user is None or user.disabled:
                raise InvalidRequestError("the user of the subject token is no longer active")
            claims = {**claims, "_user": user}
        return claims

    def verified(self, client: Client, token: str, token_type: str, *, what: str) -> dict[str, Any]:
        """A token of `token_type` this broker issued to or for `client`, unexpired and (access
        tokens) not revoked, its grant not revoked; for a subject access token, its user active."""
        if token_type == c.TOKEN_TYPE_ACCESS_TOKEN:
            try:
                if what == "subject":
                    claims = self.access_tokens.validate(token, load_user=True)
                else:  # an actor may be a client acting for itself (client_credentials): no user
                    claims = self.access_tokens.validate(token)
            except InvalidTokenError as exc:
                raise InvalidRequestError(f"the {what} token: {exc.description}") from None
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            if client.client_id != claims.get("client_id") and client.client_id not in audiences:
                raise InvalidRequestError(f"the {what} token was not issued to or for this client")
            return claims
        return self.id_token_claims(client, token, what)

    def id_token_claims(self, client: Client, token: str, what: str) -> dict[str, Any]:
        """An ID token of ours (OIDC Core §3.1.3.7 checks, as its relying party): signature, typ,
        iss, aud naming this client, and not older than its lifetime (exp)."""
        if token.count(".") != 2 or len(token) > 8192:
            raise InvalidRequestError(f"the {what} token is malformed")
        try:
            decoded = self.keys.verify(token)
        except (JoseError, ValueError):
            raise InvalidRequestError(f"the {what} token is invalid") from None
        claims = dict(decoded.claims)
        if str(decoded.header.get("typ", "")).upper() != "JWT" or "auth_time" not in claims:
            raise InvalidRequestError(f"the {what} token is not an ID token")
        if claims.get("iss") != self.issuer:
            raise InvalidRequestError(f"the {what} token was not issued here")
        exp, sub, aud = claims.get("exp"), claims.get("sub"), claims.get("aud")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or not isinstance(sub, str):
            raise InvalidRequestError(f"the {what} token is malformed")
        if exp <= time.time():
            raise InvalidRequestError(f"the {what} token expired")
        if client.client_id not in (aud if isinstance(aud, list) else [aud]):
            raise InvalidRequestError(f"the {what} token was not issued to this client")
        return claims


def delegation(subject: dict[str, Any], actor: dict[str, Any] | None) -> dict[str, Any] | None:
    """RFC 8693 §4.1 `act`: the actor (by its sub: a user's, or a client's for a client_credentials
    token) acting for the subject. Prior actors nest inside, outermost the current one: the actor
    token's own `act` when it is itself a delegated token, else the subject token's. Without an actor
    token the subject's `act` carries over (a delegated token stays delegated)."""
    if actor is None:
        return subject.get("act")
    act: dict[str, Any] = {"sub": actor["sub"]}
    prior = actor.get("act") or subject.get("act")
    if prior:
        act["act"] = prior
    return act
