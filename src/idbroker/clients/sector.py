"""The sector_identifier_uri check (OIDC Registration §5, OIDC Core §8.1).

A pairwise client may name a sector_identifier_uri: a JSON array of redirect URIs served by the
client. Its host is the sector that pairwise subjects are computed for, so that the applications
of one organisation on several hosts see the same `sub`. The OP "MUST validate that all the
redirect_uris are included" in it, at registration and whenever the redirect URIs or the URI
change: registered otherwise, any client could claim another's sector and correlate its users.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_BYTES = 64 * 1024
TIMEOUT = 5.0

Fetch = Callable[[str], Any]


def fetch_json(uri: str) -> Any:
    """GETs `uri` (no redirects, bounded size and time) and parses it; ValueError on any failure."""
    import httpx  # imported here: only registration needs it

    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http, http.stream("GET", uri) as r:
            if r.status_code != 200:
                raise ValueError(f"it answered HTTP {r.status_code}")
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ValueError("it is larger than 64 KiB")
    except httpx.HTTPError as exc:
        raise ValueError(f"it could not be fetched ({type(exc).__name__})") from None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("it is not JSON") from None


def check_sector(uri: str, redirect_uris: list[str], fetch: Fetch) -> list[str]:
    """The problems of a sector_identifier_uri for these redirect URIs (empty: accepted)."""
    try:
        listed = fetch(uri)
    except ValueError as exc:
        return [f"sector_identifier_uri {uri}: {exc}"]
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        return [f"sector_identifier_uri {uri} must serve a JSON array of redirect URIs"]
    missing = [u for u in redirect_uris if u not in listed]
    if missing:
        return [f"sector_identifier_uri {uri} does not list the redirect URI {missing[0]}"]
    return []
