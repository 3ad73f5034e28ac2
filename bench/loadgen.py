"""The login-flow load generator of ./bench/run: authorization code + PKCE at the HTTP level, like a browser.

wrk drives the single-request endpoints; it cannot drive this flow, because its Lua `response()` sees
only the last of repeated headers (oidc-provider sets four cookies at once) and is not told which
connection a response came on. This generator is plain asyncio (stdlib only, keep-alive HTTP/1.1): each
virtual user owns one connection and one cookie jar, and loops

    GET authorize -> (redirects) -> login form -> POST credentials -> (redirects) -> redirect_uri?code=...
    -> POST token (client_secret_basic, code_verifier)

until the deadline or the flow limit. Nothing in it is server-specific: it follows same-origin redirects,
fills the first form that has a password field (field `username` or `login`), and stops at the
redirect URI. A flow counts when the token response has access_token, id_token and refresh_token.
With `--upstream ORIGIN` (and `--idp-hint ID`) the flow is a federated sign-in: redirects to that
origin are followed too, on a connection and with a cookie jar of its own, and its login form is
filled the same way.

    python bench/loadgen.py login --issuer URL --duration 10 --users 32 ...   -> one JSON line
    python bench/loadgen.py tokens --issuer URL --count 64 ...                -> token responses, JSON lines
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
import time
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

REQUEST_TIMEOUT = 30.0


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.requests = 0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b""
                      ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (0, 1):
            reused = self.writer is not None
            if not reused:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await asyncio.wait_for(self._exchange(method, target, headers, body), REQUEST_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                await self.close()
                if not reused or attempt:  # a fresh connection failed: a real error
                    raise HttpError(f"connection failed: {exc!r}") from None
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, target: str, headers: dict[str, str], body: bytes
                        ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        out_headers = []
        length = None
        chunked = close = False
        for line in header_lines:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            out_headers.append((name, value))
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
        if chunked:
            data = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                data += await self.reader.readexactly(size + 2)
                del data[-2:]
            payload = bytes(data)
        elif length is not None:
            payload = await self.reader.readexactly(length) if length else b""
        elif status in (204, 304) or method == "HEAD":
            payload = b""
        else:
            payload = await self.reader.read()
            close = True
        if close:
            await self.close()
        return status, out_headers, payload


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


FORM_RE = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
INPUT_RE = re.compile(r"<input\b([^>]*)>", re.S | re.I)
ATTR_RE = re.compile(r'([a-zA-Z_:-]+)\s*=\s*"([^"]*)"')


def login_form(page: str) -> tuple[str, dict[str, str]] | None:
    """(action, fields) of the first form with a password input."""
    for form_attrs, inner in FORM_RE.findall(page):
        attrs = {k.lower(): html.unescape(v) for k, v in ATTR_RE.findall(form_attrs)}
        fields: dict[str, str] = {}
        has_password = False
        for input_attrs in INPUT_RE.findall(inner):
            a = {k.lower(): html.unescape(v) for k, v in ATTR_RE.findall(input_attrs)}
            if a.get("type", "text").lower() == "password":
                has_password = True
            if "name" in a:
                fields[a["name"]] = a.get("value", "")
        if has_password:
            return attrs.get("action", ""), fields
    return None


class Browser:
    """A user agent for one flow at a time: a cookie jar (host-only, path ignored) on one connection."""

    def __init__(self, cfg: argparse.Namespace, conn: Connection, n: int = 0):
        self.cfg = cfg
        self.origin = cfg.issuer.rstrip("/")
        # One connection and one cookie jar per origin: the server's, and an upstream provider's when
        # the flow is a federated sign-in (--upstream).
        self.conns = {self.origin: conn}
        self.jars: dict[str, dict[str, str]] = {self.origin: {}}
        if getattr(cfg, "upstream", None):
            upstream = cfg.upstream.rstrip("/")
            parts = urlsplit(upstream)
            self.conns[upstream] = Connection(parts.hostname or "", parts.port or 80)
            self.jars[upstream] = {}
        self.username = cfg.username.format(n=n)  # "{n}": one account per virtual user
        basic = base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()
        self.basic = f"Basic {basic}"

    async def close(self) -> None:
        for conn in self.conns.values():
            await conn.close()

    @property
    def requests(self) -> int:
        return sum(conn.requests for conn in self.conns.values())

    def _cookies(self, jar: dict[str, str], headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            if name != "set-cookie":
                continue
            pair, *attrs = value.split(";")
            cname, _, cvalue = pair.strip().partition("=")
            lowered = [a.strip().lower() for a in attrs]
            expired = any(a.startswith("max-age=") and a[8:].lstrip("-").isdigit() and int(a[8:]) <= 0
                          for a in lowered) or any(a.startswith("expires=thu, 01 jan 1970") for a in lowered)
            if expired or cvalue == "":
                jar.pop(cname, None)
            else:
                jar[cname] = cvalue

    async def _send(self, method: str, url: str, body: bytes = b"", extra: dict[str, str] | None = None,
                    base: str | None = None) -> tuple[int, list[tuple[str, str]], bytes, str]:
        """One request; a relative `url` is resolved against `base` (default: the server's origin)."""
        base = base or self.origin
        parts = urlsplit(urljoin(base + "/", url))
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.conns:
            raise HttpError(f"unexpected cross-origin URL {url}")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": "idbroker-bench", "Accept": "text/html,application/json"}
        jar = self.jars[origin]
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if extra:
            headers.update(extra)
        status, resp_headers, payload = await self.conns[origin].request(method, target, headers, body)
        self._cookies(jar, resp_headers)
        return status, resp_headers, payload, origin

    async def flow(self, new_browser: bool = True) -> dict:
        """One full login (or, with new_browser=False and a live session, authorize -> code -> token);
        returns the token response."""
        cfg = self.cfg
        if new_browser:
            for jar in self.jars.values():  # no session yet, here or upstream
                jar.clear()
        verifier, challenge = pkce_pair()
        query = {"response_type": "code", "client_id": cfg.client_id, "redirect_uri": cfg.redirect_uri,
                 "scope": cfg.scope, "state": secrets.token_urlsafe(12), "nonce": secrets.token_urlsafe(12),
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        if getattr(cfg, "idp_hint", None):  # straight to that upstream provider
            query["idp_hint"] = cfg.idp_hint
        method, url, body = "GET", f"{cfg.authorize}?{urlencode(query)}", b""
        extra: dict[str, str] | None = None
        base = self.origin
        for _ in range(16):
            status, headers, payload, base = await self._send(method, url, body, extra, base)
            location = next((v for k, v in headers if k == "location"), None)
            if status in (301, 302, 303, 307) and location:
                if location.startswith(cfg.redirect_uri):
                    params = parse_qs(urlsplit(location).query)
                    if "code" not in params:
                        raise HttpError(f"no code in redirect: {location[:200]}")
                    return await self._token(params["code"][0], verifier)
                method, url, body, extra = "GET", location, b"", None
                continue
            if status == 200:
                form = login_form(payload.decode("utf-8", "replace"))
                if form is None:
                    raise HttpError(f"200 without a login form at {url[:80]}")
                action, fields = form
                for name in ("username", "login", "email"):
                    if name in fields:
                        fields[name] = self.username
                for name in ("password",):
                    fields[name] = cfg.password
                method, url, body = "POST", action or url, urlencode(fields).encode()
                extra = {"Content-Type": "application/x-www-form-urlencoded"}
                continue
            raise HttpError(f"HTTP {status} at {url[:80]}: {payload[:200]!r}")
        raise HttpError("too many steps")

    async def _token(self, code: str, verifier: str) -> dict:
        body = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": self.cfg.redirect_uri,
                          "code_verifier": verifier}).encode()
        status, _, payload, _ = await self._send("POST", self.cfg.token, body, {
            "Content-Type": "application/x-www-form-urlencoded", "Authorization": self.basic,
            "Accept": "application/json"})
        if status != 200:
            raise HttpError(f"token endpoint: HTTP {status}: {payload[:200]!r}")
        tokens = json.loads(payload)
        missing = [k for k in ("access_token", "id_token", "refresh_token") if k not in tokens]
        if missing:
            raise HttpError(f"token response lacks {', '.join(missing)}")
        return tokens


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[idx]


async def run_login(cfg: argparse.Namespace) -> dict:
    """`users` virtual users loop full logins until `duration` s pass or `max_flows` have started."""
    host, port = urlsplit(cfg.issuer).hostname, urlsplit(cfg.issuer).port
    latencies: list[float] = []
    errors: list[str] = []
    started = 0
    browsers: list[Browser] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    deadline = wall0 + cfg.duration

    async def user(n: int) -> None:
        nonlocal started
        browser = Browser(cfg, Connection(host, port), n)
        browsers.append(browser)
        while time.perf_counter() < deadline and started < cfg.max_flows:
            started += 1
            t0 = time.perf_counter()
            try:
                await browser.flow()
                latencies.append(time.perf_counter() - t0)
            except (TimeoutError, HttpError, OSError, ValueError) as exc:
                await browser.close()
                if len(errors) < 1000:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    errors.append("")
        await browser.close()

    await asyncio.gather(*(user(n) for n in range(cfg.users)))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    latencies.sort()
    http_requests = sum(b.requests for b in browsers)
    sample = sorted({e for e in errors if e})[:5]
    return {"flows": len(latencies), "duration_s": wall, "rps": len(latencies) / wall,
            "http_requests": http_requests, "http_rps": http_requests / wall,
            "p50_ms": _percentile(latencies, 50) * 1000, "p90_ms": _percentile(latencies, 90) * 1000,
            "p99_ms": _percentile(latencies, 99) * 1000, "max_ms": (latencies[-1] * 1000 if latencies else 0.0),
            "errors": len(errors), "error_samples": sample,
            "generator_cpu_s": cpu, "generator_cpu_pct": 100 * cpu / wall}


async def run_tokens(cfg: argparse.Namespace) -> list[dict]:
    """`count` logins (at most `users` at once); returns their token responses."""
    host, port = urlsplit(cfg.issuer).hostname, urlsplit(cfg.issuer).port
    out: list[dict] = []
    todo = list(range(cfg.count))

    async def user(n: int) -> None:
        browser = Browser(cfg, Connection(host, port), n)
        while todo:
            todo.pop()
            out.append(await browser.flow(new_browser=False))  # the first one signs in
        await browser.close()

    await asyncio.wait_for(asyncio.gather(*(user(n) for n in range(min(cfg.users, cfg.count)))), 300)
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["login", "tokens"])
    ap.add_argument("--issuer", required=True, help="origin of the server, e.g. http://127.0.0.1:8000")
    ap.add_argument("--authorize", required=True, help="authorization endpoint (absolute or path)")
    ap.add_argument("--token", required=True, help="token endpoint (absolute or path)")
    ap.add_argument("--client-id", default="web1")
    ap.add_argument("--client-secret", default=os.environ.get("BENCH_WEB1_SECRET", ""))
    ap.add_argument("--redirect-uri", default="http://127.0.0.1:8080/cb")
    ap.add_argument("--scope", default="openid email offline_access")
    ap.add_argument("--username", default="bench@example.com",
                    help='the account; "{n}" in it becomes the virtual user\'s number (one account each)')
    ap.add_argument("--password", default=os.environ.get("BENCH_PASSWORD", ""))
    ap.add_argument("--upstream", default=None, help="origin of an upstream provider the flow may visit "
                    "(a federated sign-in: its login form is filled like the server's)")
    ap.add_argument("--idp-hint", default=None, help="idp_hint sent with the authorization request (the "
                    "server's id of the upstream provider)")
    ap.add_argument("--users", type=int, default=32, help="concurrent virtual users (connections)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds (login mode)")
    ap.add_argument("--max-flows", type=int, default=200_000, help="upper bound on flows started (login mode)")
    ap.add_argument("--count", type=int, default=1, help="token responses to fetch (tokens mode: one sign-in "
                    "per user, then authorize -> code -> token on its session)")
    return ap


def main(argv: list[str] | None = None) -> None:
    cfg = build_parser().parse_args(argv)
    if cfg.mode == "login":
        print("JSON " + json.dumps(asyncio.run(run_login(cfg))), flush=True)
    else:
        for tokens in asyncio.run(run_tokens(cfg)):
            print(json.dumps(tokens), flush=True)


if __name__ == "__main__":
    sys.exit(main())
