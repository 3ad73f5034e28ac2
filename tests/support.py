"""Helpers shared by the test suites (imported as ``support``; fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.testclient import TestClient

from idbroker.settings import Settings

ISSUER = "http://127.0.0.1:8000"
PASSWORD = "correct horse battery staple"
TEST_SECRET = base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()


def make_settings(tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(issuer=ISSUER, data_dir=str(tmp_path), secret_key=TEST_SECRET,
                                  argon2_memory_kib=8192, argon2_time_cost=1, cache_seconds=0)
    values.update(overrides)
    settings = Settings(**values)
    settings.validate()
    return settings


@dataclass
class RegisteredClient:
    client_id: str
    secret: str | None
    redirect_uri: str

    @property
    def basic(self) -> tuple[str, str]:
        assert self.secret is not None
        return (self.client_id, self.secret)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
INTERACTION_RE = re.compile(r'name="interaction" value="([^"]*)"')


def form_fields(html: str) -> dict[str, str]:
    return {"csrf_token": CSRF_RE.search(html).group(1),  # type: ignore[union-attr]
            "interaction": INTERACTION_RE.search(html).group(1)}  # type: ignore[union-attr]


def query_of(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def fragment_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


class Flow:
    """Drives the browser side of an authorization request through the real pages."""

    def __init__(self, http: TestClient):
        self.http = http

    def follow(self, response: Any) -> Any:
        """Follows redirects that stay on the broker; stops at the client's redirect URI."""
        while response.status_code in (302, 303) and response.headers["location"].startswith(ISSUER):
            response = self.http.get(response.headers["location"])
        return response

    def authorize(self, **params: str) -> Any:
        return self.follow(self.http.get("/oauth2/authorize", params=params))

    def login(self, page: Any, email: str = "alice@example.com", password: str = PASSWORD) -> Any:
        assert page.status_code == 200 and 'autocomplete="current-password"' in page.text, page.text
        fields = form_fields(page.text)
        return self.follow(self.http.post("/login", data={**fields, "username": email, "password": password}))

    def consent(self, page: Any, decision: str = "allow") -> Any:
        assert 'action="/consent"' in page.text, page.text
        fields = form_fields(page.text)
        return self.follow(self.http.post("/consent", data={**fields, "decision": decision}))

    def code_flow(self, client: RegisteredClient, *, scope: str = "openid profile email", nonce: str | None = "n-1",
                  state: str = "st-1", consent: bool = True, **extra: str) -> tuple[dict[str, str], str]:
        """Full login → consent → code; returns (redirect query params, PKCE verifier)."""
        verifier, challenge = pkce_pair()
        params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                      scope=scope, state=state, code_challenge=challenge, code_challenge_method="S256", **extra)
        if nonce:
            params["nonce"] = nonce
        page = self.authorize(**params)
        if page.status_code == 200 and 'autocomplete="current-password"' in page.text:
            page = self.login(page)
        if consent and page.status_code == 200 and 'action="/consent"' in page.text:
            page = self.consent(page)
        assert page.status_code == 303, page.text
        location = page.headers["location"]
        assert location.startswith(client.redirect_uri), location
        return query_of(location), verifier


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        import threading
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self._arrived = threading.Condition()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                msg = message_from_bytes(envelope.original_content, policy=policy.default)
                with sink._arrived:
                    sink.messages.append(msg)
                    sink._arrived.notify_all()
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def settings(self) -> dict[str, Any]:
        return {"mail_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": "none",
                "mail_from": "Broker <no-reply@idbroker.test>"}

    def wait_for(self, to: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Messages to `to`, once at least `count` have arrived (bounded wait, no sleeps)."""
        def mine() -> list[Any]:
            return [m for m in self.messages if to.lower() in str(m["To"]).lower()]

        with self._arrived:
            self._arrived.wait_for(lambda: len(mine()) >= count, timeout=timeout)
            found = mine()
        assert len(found) >= count, f"expected {count} message(s) to {to}, got {len(found)}"
        return found

    @staticmethod
    def text(msg: Any) -> str:
        return msg.get_body(preferencelist=("plain",)).get_content()

    def stop(self) -> None:
        self.controller.stop()


def run_async(main: Any) -> Any:
    """Runs the coroutine function `main` to completion in a thread of its own: the browser tests'
    Playwright keeps an event loop running in the main thread, where anyio.run would refuse."""
    import threading

    import anyio

    result: list[Any] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(anyio.run(main))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def run_coroutine(coroutine: Any) -> Any:
    """asyncio.run for a coroutine object, in a thread of its own (see run_async)."""
    async def main() -> Any:
        return await coroutine

    return run_async(main)


def wait_until_ready(proc: Any, ready: Any, timeout: float, what: str, log: Any) -> None:
    """Until `ready()` is true for the started process `proc`, for at most `timeout` seconds; it
    is then stopped by the caller. Raises with the process's log (`log()`) when it exits first or
    never gets ready. `ready` may raise: that counts as not yet."""
    import subprocess
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not answering yet
            pass
        try:  # the pause between attempts, which also notices an early exit
            code = proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"{what} exited with {code} before it was ready:\n{log()}")
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s:\n{log()}")


class Quiet(BaseHTTPRequestHandler):
    """A test endpoint's handler (a webhook, an upstream, a JWKS or a receiver to point the broker
    at): `answer` writes a whole response; nothing is logged."""

    def answer(self, status: int, body: bytes = b"", content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        """The request's body (by its Content-Length)."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[str, Callable[[], None]]:
    """`handler` on a free loopback port, in a thread: its base URL, and the function that stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name=handler.__name__, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
    return f"http://127.0.0.1:{server.server_port}", stop


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`serve` for a `with` block: the base URL inside, stopped on the way out."""
    url, stop = serve(handler)
    try:
        yield url
    finally:
        stop()


class Relay:
    """A TCP relay to PostgreSQL, standing in for the network between a node and its store. Told to
    lose the next message one way (`lose`), it closes both sides instead of passing that message on:
    "request" loses a statement before the server has it, "answer" loses the answer to a statement
    that the server ran - and, autocommitted, committed - before it answered. Refusing, it closes
    every new connection at once: a store that is gone. Stalled (`stall`), it holds every message
    until `resume`: a store that hangs, as a partitioned network or a stopped server does."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.losing: str | None = None
        self.lost = threading.Event()
        self.refusing = False
        self.flowing = threading.Event()
        self.flowing.set()
        self.held = threading.Event()  # set when a message is held by `stall`
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose(self, direction: str, then_refuse: bool = False) -> None:
        with self._lock:
            self.losing, self.refusing = direction, then_refuse

    def stall(self) -> None:
        self.held.clear()
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def cut(self) -> None:
        """Closes every connection it relays: a store that restarted, or terminated them."""
        with self._lock:
            ends, self._open = list(self._open), set()
        for end in ends:
            _close(end)

    def close(self) -> None:
        _close(self.listener)  # shut down first: that wakes the thread waiting in accept()
        self.resume()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self._lock:
                self._open |= {client, server}
            for source, sink, direction in ((client, server, "request"), (server, client, "answer")):
                threading.Thread(target=self._pass, args=(source, sink, direction), daemon=True).start()

    def _pass(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if self.losing == direction:
                        self.losing = None
                        self.lost.set()
                        break
                if not self.flowing.is_set():
                    self.held.set()
                    self.flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, sink}
            _close(source)
            _close(sink)


def _close(end: socket.socket) -> None:
    try:
        end.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    end.close()
