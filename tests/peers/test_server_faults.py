"""A real ``idbroker serve`` with two workers (Granian) under faults: a worker killed the way the
kernel's OOM killer or a crash in native code kills it is replaced while the other one keeps
answering, and a flood from one client address - connections that never finish their headers,
requests that never finish their bodies - leaves the broker answering others (server.py,
web/limits.py).

Everything listens and connects on loopback; a second client address is 127.0.0.2 (Linux routes
all of 127.0.0.0/8 to the loopback interface). Every wait is bounded."""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from broker_process import Broker

from idbroker.server import BACKLOG, HEADER_READ_TIMEOUT
from idbroker.web.limits import MAX_IN_PROGRESS

WORKERS = 2
WAIT = 60.0  # seconds: a bound on every wait, never reached when things work
DISCOVERY = "/.well-known/openid-configuration"
OTHER_ADDRESS = "127.0.0.2"
FLOOD = BACKLOG + 200  # more connections than the workers together serve at once (backlog ÷ workers each)
FILES_NEEDED = 2 * FLOOD + 1024  # both ends of every connection live on this machine

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def workers(broker: Broker) -> dict[int, int]:
    """The live worker processes of the server: pid -> start time (clock ticks since boot)."""
    assert broker.proc is not None
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        state, ppid, started = fields[0], int(fields[1]), int(fields[19])
        if ppid == broker.proc.pid and state != "Z":
            found[int(entry.name)] = started
    return found


def serving(broker: Broker) -> bool:
    """Every worker Granian has spawned has started serving (each listens on a socket of its own,
    SO_REUSEPORT), and there are WORKERS of them."""
    log = broker.log_path.read_text(errors="replace")
    return log.count("Spawning worker-") == log.count("Started worker-") and len(workers(broker)) == WORKERS


def wait_until(condition, what: str, broker: Broker) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:.0f}s\n{broker.log()}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FILES_NEEDED:
        pytest.skip(f"the open-files limit ({hard}) is below the {FILES_NEEDED} these tests need")
    if soft != resource.RLIM_INFINITY and soft < FILES_NEEDED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_NEEDED, hard))  # the server inherits it
    broker = Broker("sqlite", tmp_path_factory.mktemp("server-faults"), None, workers=WORKERS)
    try:
        broker.start()
        wait_until(lambda: serving(broker), "both workers serving", broker)
        yield broker
    finally:
        broker.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["oom-kill", "segfault"])
def test_a_dead_worker_is_replaced_and_the_server_keeps_answering(server, sig):
    before = workers(server)
    # The longest-running worker: never the replacement made by an earlier test, which Granian
    # treats as a crash loop (and stops the server) if it dies within seconds of starting.
    victim = min(before, key=before.__getitem__)
    resource.prlimit(victim, resource.RLIMIT_CORE, (0, 0))  # no core file
    os.kill(victim, sig)
    with httpx.Client(base_url=server.issuer, timeout=10) as http:
        def replaced() -> bool:
            assert server.proc.poll() is None, f"the server exited after losing a worker:\n{server.log()}"
            return victim not in workers(server) and serving(server)

        wait_until(replaced, "a replacement worker serving", server)
        for _ in range(20):
            assert http.get(DISCOVERY).status_code == 200
    assert server.proc.poll() is None
    assert "Respawning worker" in server.log()


def test_slow_headers_from_one_address_do_not_starve_the_server(server):
    """Every connection each worker serves at once is held by one that never finishes its headers;
    the header read timeout frees them, so a request that comes after them is answered in well
    under Granian's default 30 s."""
    held: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            try:
                conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            except OSError:  # the kernel's accept queue is full: every place is taken already
                break
            conn.sendall(b"GET " + DISCOVERY.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the blank line
            held.append(conn)
        assert len(held) > BACKLOG
        with httpx.Client(base_url=server.issuer, timeout=2 * HEADER_READ_TIMEOUT) as http:
            assert http.get(DISCOVERY).status_code == 200
    finally:
        for conn in held:
            conn.close()


def test_slow_bodies_from_one_address_leave_the_server_to_others(server):
    """Requests whose bodies never arrive: each worker keeps MAX_IN_PROGRESS of them from one
    address and refuses the rest at once (429, Retry-After, connection closed); another address
    is served meanwhile."""
    head = (b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\ngrant_type=")
    extra = 50
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(WORKERS * MAX_IN_PROGRESS
                                                                                         + extra)]
    try:
        for conn in held:
            conn.sendall(head)
        answers: dict[socket.socket, bytes] = {}
        deadline = time.monotonic() + WAIT
        while len(answers) < extra and time.monotonic() < deadline:
            ready, _, _ = select.select([c for c in held if c not in answers], [], [], 0.5)
            for conn in ready:
                answers[conn] = conn.recv(4096)
        refused = [a for a in answers.values() if a.startswith(b"HTTP/1.1 429 ")]
        assert len(refused) >= extra, answers.values()
        assert all(b"\r\nretry-after: 1\r\n" in a.lower() and b"\r\nconnection: close\r\n" in a.lower()
                   for a in refused)
        transport = httpx.HTTPTransport(local_address=OTHER_ADDRESS)
        with httpx.Client(base_url=server.issuer, timeout=WAIT, transport=transport) as http:
            assert http.get(DISCOVERY).status_code == 200
    finally:
        for conn in held:
            conn.close()
