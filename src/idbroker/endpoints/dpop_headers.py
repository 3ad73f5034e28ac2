"""DPoP (RFC 9449) at the HTTP layer: reading the `DPoP` header, and the `DPoP-Nonce` header the
broker sends when it provides nonces (setting `dpop_nonce`, §8). The checks are oauth2/dpop.py's."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..oauth2.dpop import DPOP_ALGS, InvalidDpopProofError
from ..oauth2.errors import InvalidTokenError, OAuth2Error


def dpop_challenge(err: OAuth2Error) -> str:
    """§7.1: the WWW-Authenticate challenge of the DPoP scheme, with the error."""
    return f'DPoP algs="{" ".join(DPOP_ALGS)}", error="{err.error}", error_description="{err.safe_description}"'


def nonce_headers(provider: Any) -> dict[str, str]:
    nonce = provider.dpop.nonce()
    return {"DPoP-Nonce": nonce} if nonce else {}


def proof_of(request: Request) -> str | None:
    """The one DPoP header's value (§4.3 item 1: exactly one), or None."""
    proofs = request.headers.getlist("dpop")
    if len(proofs) > 1:
        raise InvalidDpopProofError("send exactly one DPoP header")
    return proofs[0] if proofs else None


async def token_request_key(request: Request, provider: Any, client: Any) -> str | None:
    """The jkt of the token request's DPoP proof (htu: the token endpoint), None without one;
    a `--dpop-bound` client must send one (§5.2)."""
    proof = proof_of(request)
    if proof is None:
        if client.dpop_bound or client.fapi2:  # FAPI 2.0 §5.3.2.1 item 5: sender-constrained tokens
            raise InvalidDpopProofError("this client must send a DPoP proof")
        return None
    return await run_in_threadpool(provider.dpop.check, proof, "POST", provider.endpoint("token"))


async def check_binding(request: Request, provider: Any, token: str, claims: dict[str, Any], dpop: bool) -> None:
    """RFC 9449 §7.1: at a resource endpoint a DPoP-bound token (cnf.jkt) comes with the DPoP
    scheme and a proof, for this request and this token (ath), by the key it is bound to; a
    bound token sent as Bearer, or a bearer token sent as DPoP, is refused."""
    jkt = (claims.get("cnf") or {}).get("jkt")
    if not jkt:
        if dpop:
            raise InvalidTokenError("the access token is not DPoP-bound")
        return
    if not dpop:
        raise InvalidTokenError("the access token is DPoP-bound: use the DPoP scheme with a proof")
    proof = proof_of(request)
    if proof is None:
        raise InvalidDpopProofError("a DPoP proof is required", status_code=401)
    url = provider.issuer + request.url.path
    try:
        got = await run_in_threadpool(provider.dpop.check, proof, request.method, url, access_token=token)
    except OAuth2Error as err:
        err.status_code = 401  # §7.1 / §9: a resource's answer to a bad proof or a missing nonce
        raise
    if got != jkt:
        raise InvalidDpopProofError("the DPoP proof key is not the one the token is bound to", status_code=401)
