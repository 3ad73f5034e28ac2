"""OIDC Core §5.3 UserInfo endpoint, Bearer token per RFC 6750 (header or form body).

The answer is JSON, or, for a client registered with userinfo_signed_response_alg (OIDC
Registration §2), a JWT signed with that algorithm carrying iss and aud (§5.3.2), served as
`application/jwt`. Its `sub` is the one the client sees (pairwise subjects, §8.1)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..oauth2.errors import InsufficientScopeError, InvalidRequestError, InvalidTokenError, OAuth2Error
from ..oidc.claims import requested_claims, upstream_claims, user_claims
from .common import json_response, provider_of, read_form
from .dpop_headers import check_binding, dpop_challenge, nonce_headers


def _challenge(err: OAuth2Error | None) -> str:
    """RFC 6750 §3: WWW-Authenticate with the error when there was a token."""
    if err is None:
        return 'Bearer realm="idbroker"'
    return f'Bearer realm="idbroker", error="{err.error}", error_description="{err.safe_description}"'


async def userinfo_endpoint(request: Request) -> Response:
    provider = provider_of(request)
    try:
        token, dpop = None, False
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() not in ("bearer", "dpop") or not value.strip():
                raise InvalidRequestError("the Authorization header must use the Bearer or DPoP scheme")
            token, dpop = value.strip(), scheme.lower() == "dpop"
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            form = await read_form(request)
            if "access_token" in form:
                if token is not None:
                    raise InvalidRequestError("send the access token in one place only (RFC 6750 §2)")
                token = form["access_token"]
        if token is None:
            return Response(status_code=401, headers={"WWW-Authenticate": _challenge(None),
                                                      "Cache-Control": "no-store"})

        claims = await provider.access_tokens.check(token, load_user=True)
        await check_binding(request, provider, token, claims, dpop)
        scopes = claims.get("scope", "").split()
        if "openid" not in scopes:
            raise InsufficientScopeError("the access token lacks the openid scope")
        body = user_claims(claims["_user"], scopes) | upstream_claims(claims.get("idp"))
        if claims.get("gid"):  # OIDC Core §5.5: claims the authorization asked for here
            known, asked = provider.grants.cached_claims_request(claims["gid"])  # no thread on a hit
            if not known:
                asked = await run_in_threadpool(provider.grants.claims_request, claims["gid"])
            body |= requested_claims(claims["_user"], asked, "userinfo", scopes)
        client = provider.clients.get(claims.get("client_id", ""))
        body["sub"] = provider.id_tokens.subject(client, body["sub"])
    except OAuth2Error as err:
        status = err.status_code if isinstance(err, InvalidTokenError | InsufficientScopeError) \
            or err.status_code == 401 else 400  # 401: a DPoP proof (endpoints/dpop_headers.py)
        return json_response(err.as_dict(), status, {"WWW-Authenticate": dpop_challenge(err) if dpop else
                                                     _challenge(err), **nonce_headers(provider)})
    if client is not None and client.userinfo_signed_response_alg:
        return Response(provider.id_tokens.sign_userinfo(client, body), media_type="application/jwt",
                        headers={"Cache-Control": "no-store"})
    return json_response(body)
