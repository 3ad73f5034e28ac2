"""Delivering an authorization response to the client: query, fragment or form_post
(OAuth 2.0 Multiple Response Types §2, Form Post Response Mode), always with `iss` (RFC 9207)
and `state` exactly as sent."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..web.templating import Pages


def authorization_response(pages: Pages, request: Request | None, redirect_uri: str, mode: str, params: dict[str, str],
                           *, issuer: str | None, state: str | None) -> Response:
    """`issuer` None: the parameters already say who answers (a JARM `response`)."""
    params = dict(params)
    if state is not None:
        params["state"] = state
    if issuer is not None:
        params["iss"] = issuer
    if mode == "form_post":
        return pages.render(request, "oauth/form_post.html", redirect_uri=redirect_uri, params=params,
                            headers={"Content-Security-Policy": "default-src 'none'; script-src 'self'; "
                                     "style-src 'self'; form-action *; frame-ancestors 'none'"})
    parts = urlsplit(redirect_uri)
    encoded = urlencode(params)
    if mode == "fragment":
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, encoded))
    else:
        query = f"{parts.query}&{encoded}" if parts.query else encoded  # RFC 6749 §3.1.2 keeps the query
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
