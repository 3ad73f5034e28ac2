"""Kind "oauth2": an upstream that speaks OAuth 2.0 but not OpenID Connect (GitHub, Facebook,
Amazon), and the machinery the "oidc" kind (openid_connect.py) builds on.

Why: such providers have no ID token. Who signed in is whatever their profile API answers to
the access token we obtained ourselves from their token endpoint, over TLS, for our client.
That answer is only as good as the code's binding to this browser, so the redirect is guarded
exactly as RFC 9700 (OAuth 2.0 Security BCP) asks.

How: ``start`` draws a `state` (RFC 6749 §10.12, CSRF) and a PKCE verifier (RFC 7636 §4.1, S256
only, §4.2) into `ctx.state`, kept server-side by the flow, and returns the authorization URL
(RFC 6749 §4.1.1). ``finish`` checks, in this order:

1. `state` equals the one we drew (RFC 6749 §10.12), before anything else is believed;
2. `iss`, when present, is the upstream's issuer (RFC 9207 §2.4, mix-up defence; oidc only);
3. `error` (RFC 6749 §4.1.2.1): ``access_denied`` is the user saying no, anything else a failure;
4. the code is redeemed at the token endpoint (RFC 6749 §4.1.3) with the PKCE verifier and
   our client authentication: ``client_secret_basic`` (§2.3.1, id and secret form-encoded
   first), ``client_secret_post`` or ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9); an
   ``error`` in the answer (§5.2) is refused, even with status 200 as GitHub sends it;
5. the profile is fetched with the access token as a Bearer token (RFC 6750 §2.1) and mapped.

Claims are mapped with ``options["claims"]`` (LOCAL=UPSTREAM, dotted paths reach nested values
such as Facebook's ``picture.data.url``); unmapped standard claims (OIDC Core §5.1) keep their
names. The local ``groups`` claim (default from upstream ``groups``) becomes
`ExternalIdentity.groups`. An email counts as verified only when the upstream says so
(``email_verified``, or GitHub's emails API: the primary address and its ``verified`` flag).

Every request has a timeout (TIMEOUT). A connection failure, a timeout, a 5xx or a body that is
not a JSON object is `UpstreamUnavailable` ("try again later"); any other refusal is
`UpstreamError`. Plain ``http://`` is refused except towards loopback hosts. Tokens, codes and
secrets never appear in errors or logs; upstream tokens are dropped once the identity is built.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from hashlib import sha256
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, quote_plus, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey, import_key

from ..security import is_loopback_host
from .base import (
    REFUSED,
    REJECTED,
    UNAVAILABLE,
    ExternalIdentity,
    StartContext,
    UpstreamConfig,
    UpstreamError,
    UpstreamUnavailable,
)

if TYPE_CHECKING:
    import httpx

TIMEOUT = 10.0          # seconds for an answer
CONNECT_TIMEOUT = 5.0   # seconds to connect
MAX_BODY = 1 << 20  # bytes: no upstream answer we read is anywhere near this

# Messages shown to the user (the route renders them in the user's language): base.py's, the same
# for every kind of provider.
DENIED = REFUSED         # it refused, or the user said no
EXPIRED = REJECTED       # not the state we sent: start again

# OIDC Core §5.1 claims kept under their own names unless mapped otherwise.
STANDARD_CLAIMS = ("name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
                   "profile", "picture", "website", "email", "email_verified", "gender", "birthdate",
                   "zoneinfo", "locale", "phone_number", "phone_number_verified", "groups")
MFA_AMR = frozenset({"mfa", "hwk", "otp"})  # RFC 8176 §2 values that mean a second factor was used


def secure_url(url: str) -> str:
    """The URL itself when it is https, or http towards a loopback host (development, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname or "")):
        if parts.hostname:
            return url
    raise ValueError(f"upstream URL must be https (http only for loopback hosts): {url!r}")


def claim_map(value: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """LOCAL -> UPSTREAM, from a mapping or from ``LOCAL=UPSTREAM`` strings (the CLI's --claim)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    pairs = {}
    for item in value:
        local, sep, upstream = item.partition("=")
        if not sep or not local.strip() or not upstream.strip():
            raise ValueError(f"claim mapping must be LOCAL=UPSTREAM: {item!r}")
        pairs[local.strip()] = upstream.strip()
    return pairs


def as_bool(value: Any) -> bool:
    """Booleans as upstreams send them (Apple: the string "true")."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def pick_email(emails: Any) -> tuple[str | None, bool]:
    """GitHub's ``GET /user/emails``: the primary address and whether GitHub verified it."""
    for entry in emails if isinstance(emails, list) else ():
        if isinstance(entry, dict) and entry.get("primary") and isinstance(entry.get("email"), str):
            return entry["email"], entry.get("verified") is True
    return None, False


def _lookup(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, (str, int)) and str(v))
    return ()


class OAuth2Upstream:
    """An OAuth 2.0 provider: options authorize_url, token_url, userinfo_url, client_id,
    client_secret, scopes, claims, subject_claim (default ``sub``), token_auth, emails_url."""

    kind: ClassVar[str] = "oauth2"

    def __init__(self, config: UpstreamConfig, *, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.options = config.options
        self.http = http
        self.clock = clock
        self.client_id = str(self.options["client_id"])
        self.claims = claim_map(self.options.get("claims"))
        for name in ("authorize_url", "token_url", "userinfo_url", "emails_url", "issuer"):
            if self.options.get(name):
                secure_url(str(self.options[name]))

    # -- the two steps ------------------------------------------------------------------------
    async def start(self, ctx: StartContext) -> str:
        endpoints = await self.endpoints()
        verifier = secrets.token_urlsafe(48)
        ctx.state.update(state=secrets.token_urlsafe(32), code_verifier=verifier)
        challenge = base64.urlsafe_b64encode(sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": ctx.callback_url,
                  "scope": " ".join(self.scopes()), "state": ctx.state["state"],
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        if ctx.login_hint:
            params["login_hint"] = ctx.login_hint
        if self.options.get("response_mode"):
            params["response_mode"] = str(self.options["response_mode"])
        params.update(self.extra_authorize_params(ctx))
        url = endpoints["authorization_endpoint"]
        return url + ("&" if urlsplit(url).query else "?") + urlencode(params, quote_via=quote)

    async def finish(self, ctx: StartContext, params: Mapping[str, str]) -> ExternalIdentity:
        await self.endpoints()  # the metadata the checks compare with (oidc)
        self.check_response(ctx, params)
        tokens = await self.redeem(ctx, params["code"])
        claims, amr = await self.identify(ctx, tokens)
        return self.identity(claims, amr, params)

    # -- what the oidc kind refines -----------------------------------------------------------
    def scopes(self) -> list[str]:
        scopes = self.options.get("scopes") or []
        return [scopes] if isinstance(scopes, str) else list(scopes)

    async def endpoints(self) -> dict[str, Any]:
        return {"authorization_endpoint": secure_url(str(self.options["authorize_url"])),
                "token_endpoint": secure_url(str(self.options["token_url"])),
                "userinfo_endpoint": secure_url(str(self.options["userinfo_url"]))}

    def extra_authorize_params(self, ctx: StartContext) -> dict[str, str]:
        return {}

    def check_issuer_parameter(self, params: Mapping[str, str]) -> None:
        """RFC 9207: only meaningful where the upstream has an issuer identifier (oidc)."""

    async def identify(self, ctx: StartContext, tokens: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The upstream's claims about the user and its amr values."""
        claims = await self.userinfo(tokens)
        if self.options.get("emails_url"):
            emails = await self.fetch("GET", str(self.options["emails_url"]), headers=self._bearer(tokens),
                                      array=True)
            claims["email"], claims["email_verified"] = pick_email(emails)
        return claims, ()

    # -- steps --------------------------------------------------------------------------------
    def check_response(self, ctx: StartContext, params: Mapping[str, str]) -> None:
        expected = ctx.state.get("state")
        if not expected or not secrets.compare_digest(str(params.get("state", "")), str(expected)):
            raise UpstreamError(EXPIRED, "state does not match the one sent (RFC 6749 §10.12)")
        self.check_issuer_parameter(params)
        if params.get("error"):
            error = str(params["error"])[:100]
            raise UpstreamError(DENIED if error == "access_denied" else REFUSED,
                                f"upstream error={error} ({str(params.get('error_description', ''))[:200]})")
        if not params.get("code"):
            raise UpstreamError(REFUSED, "the callback carries neither code nor error (RFC 6749 §4.1.2)")

    async def redeem(self, ctx: StartContext, code: str) -> dict[str, Any]:
        endpoints = await self.endpoints()
        token_url = endpoints["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ctx.callback_url,
                "code_verifier": str(ctx.state.get("code_verifier", ""))}
        headers = {}
        method = self.token_auth(endpoints)
        if method == "client_secret_basic":
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret())}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif method == "client_secret_post":
            form.update(client_id=self.client_id, client_secret=self.client_secret())
        elif method == "private_key_jwt":
            form.update(client_id=self.client_id, client_assertion=self.client_assertion(token_url),
                        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        else:
            raise UpstreamError(REFUSED, f"unsupported token_auth {method!r}")
        tokens = await self.fetch("POST", token_url, data=form, headers=headers, error_field=True)
        if tokens.get("error"):
            raise UpstreamError(REFUSED, f"token endpoint error={str(tokens['error'])[:100]} "
                                        f"({str(tokens.get('error_description', ''))[:200]})")
        if not isinstance(tokens.get("access_token"), str):
            raise UpstreamUnavailable(UNAVAILABLE, "token response without access_token (RFC 6749 §5.1)")
        return tokens

    def token_auth(self, endpoints: Mapping[str, Any]) -> str:
        return str(self.options.get("token_auth") or "client_secret_basic")

    def client_secret(self) -> str:
        return str(self.options.get("client_secret") or "")

    def client_assertion(self, token_url: str) -> str:
        """RFC 7523 §3 / OIDC Core §9: signed by our key, registered at the upstream."""
        key = _private_key(self.options["private_key"])
        alg = str(self.options.get("signing_alg") or ("ES256" if isinstance(key, ECKey) else "RS256"))
        header = {"alg": alg, **({"kid": str(self.options["key_id"])} if self.options.get("key_id") else {})}
        now = int(self.clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "jti": str(uuid.uuid4()),
                  "iat": now, "exp": now + 60}
        return jwt.encode(header, claims, key, algorithms=[alg])

    async def userinfo(self, tokens: Mapping[str, Any]) -> dict[str, Any]:
        endpoints = await self.endpoints()
        return await self.fetch("GET", endpoints["userinfo_endpoint"], headers=self._bearer(tokens))

    def identity(self, claims: Mapping[str, Any], amr: tuple[str, ...],
                 params: Mapping[str, str]) -> ExternalIdentity:
        subject_claim = str(self.options.get("subject_claim") or "sub")
        subject = claims.get(subject_claim)
        if not isinstance(subject, (str, int)) or isinstance(subject, bool) or not str(subject):
            raise UpstreamError(REJECTED, f"the upstream's answer has no {subject_claim!r}")
        mapping = {name: name for name in STANDARD_CLAIMS} | self.claims
        mapped = {local: value for local, path in mapping.items()
                  if (value := _lookup(claims, path)) is not None}
        asserted = "groups" in mapped
        groups = _strings(mapped.pop("groups", None))
        email = mapped.pop("email", None)
        verified = as_bool(mapped.pop("email_verified", False))
        return ExternalIdentity(
            provider_id=self.config.id, subject=str(subject),
            email=email if isinstance(email, str) and email else None,
            email_verified=verified and isinstance(email, str), claims=mapped, groups=groups,
            groups_asserted=asserted, amr=amr, mfa=bool(MFA_AMR.intersection(amr)))

    # -- HTTP ---------------------------------------------------------------------------------
    @staticmethod
    def _bearer(tokens: Mapping[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def fetch(self, method: str, url: str, *, error_field: bool = False, array: bool = False,
                    **kwargs: Any) -> Any:
        """A JSON object (or array) from the upstream. 4xx is a refusal (or, with `error_field`,
        an OAuth error body handed back); anything unreadable means the upstream is unwell."""
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        target = urlsplit(url)._replace(query="").geturl()  # for details: no query (it may hold tokens)
        import httpx  # here: a worker loads httpx with its first upstream provider (provider.py)

        try:
            response = await self.http.request(method, url, headers=headers,
                                               timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT), **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(UNAVAILABLE, f"{method} {target}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise UpstreamUnavailable(UNAVAILABLE, f"{method} {target}: HTTP {response.status_code}")
        try:
            body = json.loads(response.content) if len(response.content) <= MAX_BODY else None
        except ValueError:
            body = None
        if response.status_code >= 400 and not (error_field and isinstance(body, dict) and body.get("error")):
            raise UpstreamError(REFUSED, f"{method} {target}: HTTP {response.status_code}")
        if not isinstance(body, list if array else dict):
            raise UpstreamUnavailable(UNAVAILABLE, f"{method} {target}: the answer is not a JSON "
                                                   f"{'array' if array else 'object'}")
        return body


def _private_key(value: Any) -> ECKey | RSAKey:
    """Our signing key for private_key_jwt (or Apple's .p8): a PEM or a JWK."""
    if isinstance(value, Mapping):
        return import_key(dict(value))  # type: ignore[return-value]
    text = str(value)
    if text.lstrip().startswith("{"):
        return import_key(json.loads(text))  # type: ignore[return-value]
    key_type = "EC" if "EC PRIVATE" in text or _is_ec_pem(text) else "RSA"
    return import_key(text, key_type)  # type: ignore[return-value, call-overload]


def _is_ec_pem(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return isinstance(load_pem_private_key(pem.encode(), password=None), ec.EllipticCurvePrivateKey)
