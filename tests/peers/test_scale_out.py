"""Two ``idbroker serve`` nodes on one PostgreSQL database behind Debian's nginx, all started here.

A user signs in through node A and continues through node B (single sign-on, code exchange,
refresh); what one node changes (a revoked token, a new signing key) the other sees; and a node
killed with SIGKILL under mixed load loses nothing that was answered: every refresh rotation that
a client received still works, every family is in the database exactly once. Every wait is bounded
by a deadline; nothing asserts how fast.

nginx runs in the foreground with a configuration, pid file and temporary paths of its own in a
temporary directory, on a free port."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from broker_process import IDBROKER, PASSWORD, Broker, free_port
from sqlalchemy import create_engine, text
from support import TEST_SECRET, form_fields, wait_until_ready

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WAIT = 30.0  # seconds: a bound on every wait, never reached when things work
REDIRECT = "http://127.0.0.1:9/cb"
EMAIL = "alice@example.com"
LOCKED = "bob@example.com"  # the account the lockout test locks
IP_FAILURES = 5  # ip_failure_threshold on the nodes
SLOW_CLIENTS = 300  # per target: nginx, and node B directly

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (./test installs it)")


def nginx_config(prefix: Path, port: int, upstreams: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams)
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would else drop to nobody
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream idbroker {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://idbroker;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502;  # a POST only when it never reached the node
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


class Cluster:
    def __init__(self, a: Broker, b: Broker, proxy: str, database_url: str):
        self.a, self.b, self.proxy, self.database_url = a, b, proxy, database_url
        self.client: dict[str, Any] = {}
        self.service: dict[str, Any] = {}

    def base(self, node: Broker) -> str:
        return f"http://127.0.0.1:{node.port}"

    def rows(self, sql: str, columns: int = 1) -> list[Any]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql))
                return [tuple(r) for r in result] if columns > 1 else list(result.scalars())
        finally:
            engine.dispose()

    def scalar(self, sql: str) -> Any:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql)).scalar()
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    admin_url = os.environ.get("IDBROKER_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("IDBROKER_TEST_POSTGRES_URL is not set (./test sets it)")
    created = f"idbroker_scale_{uuid.uuid4().hex[:12]}"
    _admin(admin_url, f'CREATE DATABASE "{created}"')
    database_url = admin_url.rsplit("/", 1)[0] + f"/{created}"
    proxy_port = free_port()
    proxy = f"http://127.0.0.1:{proxy_port}"
    nodes = []
    for name in ("a", "b"):
        node = Broker("postgres", tmp_path_factory.mktemp(f"node-{name}"), database_url)
        node.env.update(IDBROKER_ISSUER=proxy, IDBROKER_SECRET_KEY=TEST_SECRET, IDBROKER_CACHE_SECONDS="1",
                        IDBROKER_TRUSTED_PROXIES="127.0.0.1/32", IDBROKER_ARGON2_MEMORY_KIB="8192",
                        IDBROKER_IP_FAILURE_THRESHOLD=str(IP_FAILURES))
        nodes.append(node)
    a, b = nodes
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "nginx.conf").write_text(nginx_config(prefix, proxy_port, [a.port, b.port]))
    nginx: subprocess.Popen[bytes] | None = None
    try:
        a.cli("users", "add", "--email", EMAIL, "--password", PASSWORD)
        a.cli("users", "add", "--email", LOCKED, "--password", PASSWORD)
        c = Cluster(a, b, proxy, database_url)
        c.client = a.cli("clients", "add", "--client-id", "web", "--name", "Web", "--redirect-uri", REDIRECT,
                         "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--first-party")
        c.service = a.cli("clients", "add", "--client-id", "svc", "--name", "Service",
                          "--grant-type", "client_credentials")
        a.start()
        b.start()
        with open(prefix / "nginx.out", "wb") as out:
            nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        with httpx.Client(timeout=2.0) as http:
            wait_until_ready(nginx, lambda: http.get(f"{proxy}/healthz").status_code == 200, WAIT, "nginx",
                             lambda: (prefix / "error.log").read_text(errors="replace"))
        yield c
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.send_signal(signal.SIGTERM)
            try:
                nginx.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(nginx.pid, signal.SIGKILL)
                nginx.wait(timeout=15)
        for node in nodes:
            node.stop()
            if node.proc is not None and node.proc.poll() is None:
                os.killpg(node.proc.pid, signal.SIGKILL)
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


def _admin(admin_url: str, statement: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def until(condition: Any, what: str, detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:.0f}s {detail()}"
        time.sleep(0.05)


# -- a browser and a client -------------------------------------------------------------------------
def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def on(node_base: str, location: str, proxy: str) -> str:
    """A location the broker gave (on its issuer, the proxy), sent to one node instead."""
    return node_base + location[len(proxy):] if location.startswith(proxy) else location


def authorize(c: Cluster, browser: httpx.Client, node: Broker) -> tuple[str, str, bool]:
    """An authorization request on `node` (signing in there when asked): (code, verifier, whether
    the sign-in page was shown)."""
    base = c.base(node)
    verifier, challenge = pkce()
    response = browser.get(f"{base}/oauth2/authorize", params=dict(
        client_id="web", redirect_uri=REDIRECT, response_type="code", scope="openid email offline_access",
        state="s", nonce="n", code_challenge=challenge, code_challenge_method="S256"))
    signed_in = False
    for _ in range(10):
        if response.status_code in (302, 303) and response.headers["location"].startswith(REDIRECT):
            return parse_qs(urlsplit(response.headers["location"]).query)["code"][0], verifier, signed_in
        if response.status_code in (302, 303):
            response = browser.get(on(base, response.headers["location"], c.proxy))
        elif response.status_code == 200 and 'autocomplete="current-password"' in response.text:
            signed_in = True
            fields = form_fields(response.text)
            action = f"{base}/login"
            response = browser.post(action, data={**fields, "username": EMAIL, "password": PASSWORD})
        else:
            break
    raise AssertionError(f"no code: {response.status_code} {response.text[:500]}")


def token(c: Cluster, base: str, **form: str) -> httpx.Response:
    auth = (c.client["client_id"], c.client["client_secret"])
    return httpx.post(f"{base}/oauth2/token", data=form, auth=auth, timeout=10)


# -- tests ------------------------------------------------------------------------------------------
def test_sign_in_on_a_continues_on_b(cluster: Cluster) -> None:
    c = cluster
    with httpx.Client(timeout=10) as browser:
        code, verifier, signed_in = authorize(c, browser, c.a)
        assert signed_in
        tokens = token(c, c.base(c.b), grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                       code_verifier=verifier)
        assert tokens.status_code == 200, tokens.text
        # Single sign-on on node B: the session made on A, no sign-in page.
        code2, verifier2, signed_in2 = authorize(c, browser, c.b)
        assert not signed_in2
        assert token(c, c.base(c.a), grant_type="authorization_code", code=code2, redirect_uri=REDIRECT,
                     code_verifier=verifier2).status_code == 200
    refreshed = token(c, c.base(c.b), grant_type="refresh_token", refresh_token=tokens.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    # The rotated-away token is spent on node A too.
    again = token(c, c.base(c.a), grant_type="refresh_token", refresh_token=tokens.json()["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_revocation_on_a_is_seen_by_b(cluster: Cluster) -> None:
    c = cluster
    with httpx.Client(timeout=10) as browser:
        code, verifier, _ = authorize(c, browser, c.a)
    tokens = token(c, c.base(c.a), grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                   code_verifier=verifier).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    for node in (c.a, c.b):  # both have checked (and cached) the token
        assert httpx.get(f"{c.base(node)}/oauth2/userinfo", headers=bearer).status_code == 200
    auth = (c.client["client_id"], c.client["client_secret"])
    revoked = httpx.post(f"{c.base(c.a)}/oauth2/revoke", data={"token": tokens["refresh_token"]}, auth=auth)
    assert revoked.status_code == 200
    until(lambda: httpx.get(f"{c.base(c.b)}/oauth2/userinfo", headers=bearer).status_code == 401,
          "node B refuses the access token of a grant revoked on node A")
    assert token(c, c.base(c.b), grant_type="refresh_token",
                 refresh_token=tokens["refresh_token"]).status_code == 400


def test_key_rotation_is_seen_by_both(cluster: Cluster) -> None:
    c = cluster
    before = {k["kid"] for k in httpx.get(f"{c.base(c.a)}/.well-known/jwks.json").json()["keys"]}
    for alg in ("RS256", "ES256"):  # whichever the ID token uses
        done = subprocess.run([str(IDBROKER), "keys", "rotate", "--now", "--alg", alg], env=c.a.env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr

    def published(node: Broker) -> set[str]:
        return {k["kid"] for k in httpx.get(f"{c.base(node)}/.well-known/jwks.json").json()["keys"]} - before

    until(lambda: len(published(c.a)) == 2 and published(c.a) == published(c.b), "both nodes publish the new keys")
    after_a = published(c.a)
    # And sign with it: an ID token minted on B carries the new kid.
    def kid_b_signs_with() -> str:
        with httpx.Client(timeout=10) as browser:
            code, verifier, _ = authorize(c, browser, c.b)
        id_token = token(c, c.base(c.b), grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                         code_verifier=verifier).json()["id_token"]
        header = id_token.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]

    until(lambda: kid_b_signs_with() in after_a, "node B signs with the key rotated through node A's store")


def sign_in(base: str, email: str, password: str, address: str) -> int:
    """POST /login on one node without an authorization request, from `address` as a trusted proxy
    names it: 303 signed in, 401 wrong, 429 locked."""
    with httpx.Client(timeout=10, headers={"X-Forwarded-For": address}) as browser:
        page = browser.get(f"{base}/login")
        fields = form_fields(page.text)
        return browser.post(f"{base}/login", data={**fields, "username": email, "password": password}).status_code


def test_a_lockout_on_a_holds_on_b(cluster: Cluster) -> None:
    c = cluster
    answers = []
    for _ in range(20):
        answers.append(sign_in(c.base(c.a), LOCKED, "not the password at all", "198.51.100.1"))
        if answers[-1] == 429:
            break
    assert answers[-1] == 429 and set(answers) <= {401, 429}, answers
    # The right password on node B is not even checked while the account is locked.
    assert sign_in(c.base(c.b), LOCKED, PASSWORD, "198.51.100.1") == 429


def test_an_address_slowed_on_a_is_slowed_on_b(cluster: Cluster) -> None:
    """Failed sign-ins from one address over many accounts (IP_FAILURES of them) on node A: node B
    refuses that address too, at once, and still serves another address."""
    c = cluster
    answers = [sign_in(c.base(c.a), f"nobody{i}@example.com", "not the password", "203.0.113.7")
               for i in range(IP_FAILURES + 1)]
    assert answers[-1] == 429 and set(answers) <= {401, 429}, answers
    assert sign_in(c.base(c.b), "someone.else@example.com", "not the password", "203.0.113.7") == 429
    assert sign_in(c.base(c.b), "someone.else@example.com", "not the password", "203.0.113.8") == 401


def listeners(c: Cluster) -> set[int]:
    """The backends of the change-feed listeners (one per worker) on the cluster's database."""
    engine = create_engine(c.database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN idbroker_changes_%'")).scalars())
    finally:
        engine.dispose()


def test_postgresql_connections_terminated_under_load(cluster: Cluster) -> None:
    c = cluster
    with httpx.Client(timeout=10) as browser:
        code, verifier, _ = authorize(c, browser, c.a)
    tokens = token(c, c.base(c.a), grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                   code_verifier=verifier).json()
    chain = [tokens["refresh_token"]]
    for node in (c.a, c.b):  # a token check consults the change feed, which starts its listener
        httpx.get(f"{c.base(node)}/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    until(lambda: len(listeners(c)) >= 2, "both nodes listen for changes")
    before = listeners(c)
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}

    def load() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                r = http.post(f"{c.proxy}/oauth2/token", data={"grant_type": "refresh_token",
                                                                "refresh_token": chain[-1]},
                              auth=(c.client["client_id"], c.client["client_secret"]))
                if r.status_code == 200:
                    chain.append(r.json()["refresh_token"])
                else:
                    statuses.append(r.status_code)
                    bodies.append(r.text)
                counts["ok" if r.status_code == 200 else "failed"] += 1

    statuses: list[int] = []
    bodies: list[str] = []
    thread = threading.Thread(target=load)
    thread.start()
    try:
        until(lambda: counts["ok"] >= 10, "load is being served")
        at_kill = dict(counts)
        engine = create_engine(c.database_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                killed = conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
        finally:
            engine.dispose()
        assert killed >= 2
        until(lambda: counts["ok"] >= at_kill["ok"] + 20, "the nodes serve again by themselves",
              lambda: f"{counts}, the last answers: {statuses[-3:]} {bodies[-3:]}; "
                      f"connections: {c.scalar('SELECT count(*) FROM pg_stat_activity')}")
    finally:
        stop.set()
        thread.join(timeout=30)
    print(f"\npg_terminate_backend under load: {counts['failed']} of {counts['ok'] + counts['failed']} "
          f"requests failed {sorted(set(statuses))}")
    assert not [b for b in bodies if "Traceback" in b or "psycopg" in b], bodies  # no internals shown
    # 503s only: no 500, and no refresh token presented again after its rotation committed (a reuse).
    assert set(statuses) <= {503}, bodies
    # The last answered rotation is durable; the listeners came back on new connections.
    assert token(c, c.base(c.b), grant_type="refresh_token", refresh_token=chain[-1]).status_code == 200
    until(lambda: len(listeners(c)) >= 2 and not listeners(c) & before, "the change-feed listeners reconnect")


def test_slow_clients_do_not_stop_others(cluster: Cluster) -> None:
    """Hundreds of connections, to nginx and straight to node B, each sending a first part of its
    request headers and then nothing: others are served meanwhile, through nginx and by node B.
    (tests/peers/test_server_faults.py floods one node past its backlog.)"""
    c = cluster
    slow: list[socket.socket] = []
    try:
        for port in (int(urlsplit(c.proxy).port or 80), c.b.port):
            for _ in range(SLOW_CLIENTS):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                slow.append(s)
        with httpx.Client(timeout=10) as http:
            for _ in range(5):
                assert http.get(f"{c.proxy}/.well-known/openid-configuration").status_code == 200
                assert http.get(f"{c.base(c.b)}/.well-known/openid-configuration").status_code == 200
            answer = http.post(f"{c.proxy}/oauth2/token", data={"grant_type": "client_credentials"},
                               auth=(c.service["client_id"], c.service["client_secret"]))
            assert answer.status_code == 200, answer.text
    finally:
        for s in slow:
            s.close()


def test_kill_9_of_a_node_under_load_loses_nothing_answered(cluster: Cluster) -> None:
    """Refresh chains and client_credentials through nginx while node A is killed. A refresh whose
    answer was lost (the node died after its commit, or nginx answered 502) leaves its client in
    doubt: it cannot know whether the rotation happened, and presenting the old token again would
    be reuse (RFC 9700 §4.14.2), which revokes the family. Such a chain stops; the database must
    still hold its family with exactly one live token. Every other chain's last answered token
    must still refresh."""
    c = cluster
    families = 6
    grants_before = set(c.rows("SELECT id FROM grants"))
    chains: list[str] = []
    with httpx.Client(timeout=10) as browser:
        for _ in range(families):
            code, verifier, _ = authorize(c, browser, c.a)
            answer = token(c, c.base(c.a), grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           code_verifier=verifier)
            chains.append(answer.json()["refresh_token"])
    grants = set(c.rows("SELECT id FROM grants")) - grants_before
    assert len(grants) == families
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    in_doubt: set[int] = set()
    refused: list[str] = []
    lock = threading.Lock()

    def refresher(i: int) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post(f"{c.proxy}/oauth2/token", data={"grant_type": "refresh_token",
                                                                    "refresh_token": chains[i]},
                                  auth=(c.client["client_id"], c.client["client_secret"]))
                except httpx.HTTPError:
                    r = None
                with lock:
                    if r is not None and r.status_code == 200:
                        chains[i] = r.json()["refresh_token"]  # only an answered rotation counts
                        counts["ok"] += 1
                        continue
                    counts["failed"] += 1
                    if r is not None and r.status_code < 500:
                        refused.append(r.text)  # a definite refusal of an answered token: a loss
                    in_doubt.add(i)
                return

    def service() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    ok = http.post(f"{c.proxy}/oauth2/token", data={"grant_type": "client_credentials"},
                                   auth=(c.service["client_id"], c.service["client_secret"])).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=refresher, args=(i,)) for i in range(families)]
    threads += [threading.Thread(target=service) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        until(lambda: counts["ok"] >= 40, "load is being served")
        with lock:
            at_kill = dict(counts)
        assert c.a.proc is not None
        os.killpg(c.a.proc.pid, signal.SIGKILL)  # Granian and its workers, without warning
        c.a.proc.wait(timeout=15)
        until(lambda: counts["ok"] >= at_kill["ok"] + 40, "node B serves the load alone")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    total = counts["ok"] + counts["failed"]
    print(f"\nkill -9 under load: {counts['failed']} of {total} requests failed "
          f"({100.0 * counts['failed'] / max(total, 1):.1f}%), {counts['failed'] - at_kill['failed']} after the kill; "
          f"{len(in_doubt)} of {families} refresh chains left in doubt by a lost answer")
    assert not refused, refused
    for i in set(range(families)) - in_doubt:  # the last answered token still refreshes
        r = token(c, c.base(c.b), grant_type="refresh_token", refresh_token=chains[i])
        assert r.status_code == 200, (i, r.text)
    # In the database: every family still there, unrevoked, with exactly one live refresh token.
    ids = ", ".join(f"'{g}'" for g in sorted(grants))
    assert c.scalar(f"SELECT count(*) FROM grants WHERE id IN ({ids}) AND revoked_at IS NULL") == families
    live = dict(c.rows(f"SELECT grant_id, count(*) FROM refresh_tokens WHERE grant_id IN ({ids}) "
                       "AND used_at IS NULL GROUP BY grant_id", columns=2))
    assert live == {g: 1 for g in grants}, live
    assert c.scalar(f"SELECT count(*) FROM users WHERE email = '{EMAIL}'") == 1


# -- SQLite -----------------------------------------------------------------------------------------
def test_sqlite_kill_9_during_writes_leaves_a_sound_database(tmp_path: Path) -> None:
    """`kill -9` of a SQLite broker (two workers) while refresh rotations are written: the file
    passes `PRAGMA integrity_check`, and after a restart every rotation that was answered works."""
    node = Broker("sqlite", tmp_path, None, workers=2)
    node.env.update(IDBROKER_SECRET_KEY=TEST_SECRET, IDBROKER_ARGON2_MEMORY_KIB="8192")
    node.cli("users", "add", "--email", EMAIL, "--password", PASSWORD)
    c = Cluster(node, node, node.issuer, "")
    c.client = node.cli("clients", "add", "--client-id", "web", "--name", "Web", "--redirect-uri", REDIRECT,
                        "--grant-type", "authorization_code", "--grant-type", "refresh_token", "--first-party")
    chains: list[str] = []
    in_doubt: set[int] = set()
    answered = [0]
    stop = threading.Event()
    lock = threading.Lock()
    try:
        node.start()
        with httpx.Client(timeout=10) as browser:
            for _ in range(4):
                code, verifier, _ = authorize(c, browser, node)
                chains.append(token(c, c.base(node), grant_type="authorization_code", code=code,
                                    redirect_uri=REDIRECT, code_verifier=verifier).json()["refresh_token"])

        def refresher(i: int) -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    try:
                        r = http.post(f"{c.base(node)}/oauth2/token", auth=(c.client["client_id"],
                                                                           c.client["client_secret"]),
                                      data={"grant_type": "refresh_token", "refresh_token": chains[i]})
                    except httpx.HTTPError:
                        r = None
                    with lock:
                        if r is not None and r.status_code == 200:
                            chains[i] = r.json()["refresh_token"]
                            answered[0] += 1
                            continue
                        in_doubt.add(i)
                    return

        threads = [threading.Thread(target=refresher, args=(i,)) for i in range(len(chains))]
        for t in threads:
            t.start()
        try:
            until(lambda: answered[0] >= 60, "rotations are being written")
            assert node.proc is not None
            os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(timeout=15)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        with lock:
            answered_chains = list(chains)
        database = tmp_path / "idbroker.db"
        check = sqlite3.connect(database)
        live_chains = []
        try:
            assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            for i, refresh_token in enumerate(answered_chains):
                row = check.execute("SELECT grant_id, used_at FROM refresh_tokens WHERE token_hash = ?",
                                    (hashlib.sha256(refresh_token.encode()).hexdigest(),)).fetchone()
                assert row is not None, f"chain {i}: an answered rotation is not in the database"
                grant_id, used_at = row
                assert check.execute("SELECT count(*) FROM refresh_tokens WHERE grant_id = ? AND used_at IS NULL",
                                     (grant_id,)).fetchone() == (1,), f"chain {i}: not exactly one live token"
                if used_at is None:
                    live_chains.append(i)
                else:  # the request in flight at the kill committed its rotation; its answer was lost
                    assert i in in_doubt, f"chain {i}: its answered token was used by nobody it knows of"
        finally:
            check.close()
        print(f"\nSQLite kill -9: {answered[0]} rotations answered, {len(in_doubt)} chains in doubt, "
              f"{len(live_chains)} answered tokens still live")
        node.proc = None
        node.start()
        for i in live_chains:  # the answered token that is live in the file works after the restart
            r = token(c, c.base(node), grant_type="refresh_token", refresh_token=answered_chains[i])
            assert r.status_code == 200, (i, r.text)
    finally:
        node.stop()
        if node.proc is not None and node.proc.poll() is None:
            os.killpg(node.proc.pid, signal.SIGKILL)
