"""The real client behind reverse proxies: `X-Forwarded-For/-Proto/-Host` and RFC 7239 `Forwarded`,
believed only from the peers in `trusted_proxies`.

Why: behind nginx or a load balancer every connection comes from the proxy, so throttling, rate
limits, the per-address cap on requests in progress and the audit trail would all see one address.
But those headers are written by whoever sends the request: believed from anyone, they let a
client pick the address it is throttled under. So:

* the peer of the TCP connection must be in `trusted_proxies`, else every such header is ignored;
* the client address is found by walking the forwarded chain from the right (the hop nearest to us)
  and skipping the hops that are themselves trusted proxies; the first untrusted one is the client
  (a client may prepend anything it likes to the left, which is never reached);
* `Forwarded` (RFC 7239 §4) is used when present, else `X-Forwarded-For`; proto and host come from
  the same header family, from the rightmost element (the one our nearest proxy wrote).

`ProxyHeaders` rewrites the ASGI scope once (``scope["client"]``, ``scope["scheme"]``, the Host
header), so every reader of ``request.client`` - and the middlewares inside it - sees the real client;
the connection's own peer stays in ``scope["idbroker.peer"]``. `client_ip(request)` is the one
function the application uses to name the client's address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,255}$")
_DONE = "idbroker.peer"


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def address_in(address: str | None, nets: tuple[Network, ...]) -> bool:
    if not address or not nets:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in nets)


def client_ip(request: HTTPConnection) -> str | None:
    """The client's address: the peer, or the forwarded client when the peer is a trusted proxy."""
    return request.client.host if request.client else None


def _forwarded_node(value: str) -> str | None:
    """RFC 7239 §6 node: "192.0.2.43", "[2001:db8::1]:4711", "192.0.2.43:80", "unknown", "_hidden"."""
    node = value.strip().strip('"')
    if node.startswith("["):
        node = node[1:node.find("]")] if "]" in node else ""
    elif node.count(":") == 1:
        node = node.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return None  # "unknown", obfuscated identifiers: not an address


def _parse_forwarded(header: str) -> list[dict[str, str]]:
    elements = []
    for element in header.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                pairs[key.strip().lower()] = value.strip().strip('"')
        elements.append(pairs)
    return elements


def resolve(peer: str | None, headers: dict[str, str], trusted: tuple[Network, ...]
            ) -> tuple[str | None, str | None, str | None]:
    """(client address, scheme, host) as the trusted proxies tell them; None where they do not."""
    if not address_in(peer, trusted):
        return None, None, None
    forwarded = headers.get("forwarded")
    if forwarded:
        elements = _parse_forwarded(forwarded)
        hops = [_forwarded_node(e.get("for", "")) for e in elements]
        last = elements[-1] if elements else {}
        proto, host = last.get("proto"), last.get("host")
    else:
        hops = [_forwarded_node(h) for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
        proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip() or None
        host = headers.get("x-forwarded-host", "").split(",")[-1].strip() or None
    client = None
    for hop in reversed(hops):
        if hop is None:
            break  # an unknown or obfuscated hop: nothing left of it can be believed
        client = hop
        if not address_in(hop, trusted):
            break
    if proto is not None and proto.lower() not in ("http", "https"):
        proto = None
    if host is not None and not _HOST_RE.match(host):
        host = None
    return client, proto.lower() if proto else None, host


class ProxyHeaders:
    """ASGI middleware: the scope's client, scheme and Host as the trusted proxies report them.
    Applied once per request, however many times it wraps the application."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str]):
        self.app = app
        self.trusted = networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _DONE in scope:
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        scope[_DONE] = peer
        if self.trusted and peer:
            headers: dict[str, str] = {}
            for k, v in scope.get("headers", []):
                name = k.decode("latin-1").lower()
                value = v.decode("latin-1")
                headers[name] = f"{headers[name]},{value}" if name in headers else value
            client, proto, host = resolve(peer[0], headers, self.trusted)
            if client is not None or proto is not None or host is not None:
                scope = dict(scope)
                if client is not None:
                    scope["client"] = (client, 0)
                if proto is not None:
                    scope["scheme"] = proto if scope["type"] == "http" else {"http": "ws", "https": "wss"}[proto]
                if host is not None:
                    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"] + \
                        [(b"host", host.encode("latin-1"))]
        await self.app(scope, receive, send)

