"""./bench/run's driver: idbroker (SQLite, PostgreSQL) against its peers, in one run: panva's oidc-provider
clustered on Redis and as one in-memory process, django-oauth-toolkit on SQLite and on PostgreSQL.
With BENCH_GROWN=1 (./bench/run --grown): idbroker only, on the empty store and again after
bench/fill_store.py filled it, with the hot statements' query plans.

Started by ./bench/run, which provides wrk, the npm peer, the venv and a PostgreSQL admin URL
(BENCH_PG_ADMIN_URL). Steps:

 1. machine description; argon2id hashing ceiling (process pool, one process per core, idbroker's
    configured parameters) while nothing else of ours runs;
 2. start every server: idbroker on SQLite, idbroker on a fresh PostgreSQL database (Granian,
    workers = cores, via `idbroker serve`), the peers (BENCH_PEERS); cold start = spawn -> first 200;
 3. per endpoint, per server: warm-up, then the measured run, same generator and settings for all,
    in BENCH_ROUNDS rounds with the servers in turn (order reversed every other round):
    wrk (+ bench/lua/*.lua) for discovery, JWKS, client_credentials, introspection, userinfo,
    refresh (rotation: bench/lua/refresh.lua chains the returned refresh tokens), and
    bench/loadgen.py for the full code + PKCE login flow, and (idbroker only) for the federated
    sign-in through an upstream oidc-provider (bench/peer/provider.mjs as the upstream);
 4. RSS of every worker after the load; stop everything, drop the database;
 5. write the Markdown report (BENCH_OUTPUT, default docs/benchmarks.md) and print PASS/MISS per target.

Environment (durations take 10s, 1500ms, 1m or plain seconds):
  BENCH_DURATION=10s        measured run per endpoint per server (3s makes a smoke run)
  BENCH_WARMUP=2s           unmeasured run before each measured one (0 to skip)
  BENCH_HASH_DURATION       argon2 ceiling measurement (default: BENCH_DURATION)
  BENCH_CONNECTIONS=32      wrk connections; BENCH_THREADS=1 wrk threads
  BENCH_LOGIN_USERS         concurrent login flows (default: BENCH_CONNECTIONS)
  BENCH_WORKERS             idbroker workers (default: nproc)
  BENCH_BACKENDS=sqlite,postgres
  BENCH_PEERS               comma list (default: all) of oidc-cluster (oidc-provider, node cluster with workers =
                            cores, Redis adapter), oidc-single (one node process, in-memory adapter), dot-sqlite,
                            dot-postgres (django-oauth-toolkit on Granian, workers = cores; bench/peer/dot)
  BENCH_REDIS_URL=redis://127.0.0.1:6379/7   the clustered peer's store (a DB index of its own, flushed at start)
  BENCH_ENDPOINTS           comma list (default: all) of discovery,jwks,client_credentials,
                            introspection,userinfo,refresh,login,federated
  BENCH_OUTPUT=docs/benchmarks.md   ('-' prints the report instead of writing it; docs/benchmarks-grown.md
                            with BENCH_GROWN=1)
  BENCH_GROWN=1             the grown-store run (endpoints default to login,refresh,introspection,userinfo)
  BENCH_GROWN_SCALE=1       multiplies the fixture's 1M users / 1M refresh tokens / 5M audit events
  BENCH_KEEP=1              keep the temporary directory (server logs) after the run
  BENCH_WAIT_IDLE=0         wait up to this long (seconds) for the machine to go idle (<10 % CPU busy
                            over 3 s) before starting; other work on the cores skews every number
  BENCH_RETRIES=2           measure an endpoint (on every server) again, at most this often, when other
  BENCH_NOISE_LIMIT=0.25    work used more than this many cores during one of its runs; the quietest
                            attempt is reported
  BENCH_COLD_STARTS=3       idbroker is started this many times (stopped in between); its cold start is
                            the median, the report lists each
  BENCH_ROUNDS=2            the measured time of an endpoint is split into this many rounds, every server
                            in turn in each (A B C, C B A, ...); ratios are over all rounds, and the report
                            gives each round's ratio beside them
  BENCH_REF                 a git commit/ref to bench instead of the working tree's src/ (its src/ is
                            exported to a temp dir and put first on PYTHONPATH), e.g. BENCH_REF=HEAD
  BENCH_SRC                 or a directory holding an idbroker/ package (an experimental copy of src/)
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
PYCACHE = BENCH / ".pycache"  # bytecode for the venv and src/, as a pip install would have compiled
IDBROKER = str(VENV_BIN / "idbroker")
PEER_DIR = BENCH / "peer"
DOT_DIR = PEER_DIR / "dot"
DOT_PYTHON = BENCH / ".venv-dot" / "bin" / "python"
DOT_GRANIAN = BENCH / ".venv-dot" / "bin" / "granian"
PEERS = ["oidc-cluster", "oidc-single", "dot-sqlite", "dot-postgres"]
PEER_LABEL = {"oidc-cluster": "oidc-provider (cluster, Redis)", "oidc-single": "oidc-provider (1 process, memory)",
              "dot-sqlite": "django-oauth-toolkit (SQLite)", "dot-postgres": "django-oauth-toolkit (PostgreSQL)"}
IDBROKER_LABEL = {"sqlite": "idbroker (SQLite)", "postgres": "idbroker (PostgreSQL)"}
LUA = BENCH / "lua"
REDIRECT_URI = "http://127.0.0.1:8080/cb"
# One account per virtual user: real sign-ins come from different people, and the sign-in
# throttle rightly refuses a burst of parallel attempts on one account from one address.
USER_EMAIL = "bench{n}@example.com"
SCOPE_LOGIN = "openid email offline_access"
RS_JWT = "https://api.example.com/jwt"
RS_OPAQUE = "https://api.example.com/opaque"

ENDPOINTS = ["discovery", "jwks", "client_credentials", "introspection", "userinfo", "refresh", "login", "federated"]
# The federated sign-in row: idbroker only, through an upstream oidc-provider (provider.mjs, one process) that
# idbroker knows as UPSTREAM_ID; each virtual user is its own upstream account (FEDERATED_USER).
UPSTREAM_ID = "bench-up"
FLOWS = ("login", "federated")  # the rows bench/loadgen.py drives (whole sign-ins, not single requests)
FEDERATED_USER = "fed{n}@example.com"
FEDERATED_CPU_LIMIT_MS = 2.0  # idbroker's server CPU per federated sign-in, over the upstream's own
TARGET_ENDPOINTS = ["client_credentials", "refresh", "introspection", "userinfo", "discovery", "jwks"]
RATIO_TARGET = {"sqlite": 1.0, "postgres": 1.0}  # × the clustered oidc-provider on Redis
DOT_RATIO_TARGET = 3.0  # × django-oauth-toolkit on the same store
LOGIN_FACTOR = 1.3
RSS_LIMIT_MB = 100.0
COLD_START_LIMIT_S = 1.0
UPSTREAM_CACHE_S = 5.0  # idbroker's workers see a new upstream provider within cache_seconds (default 5)


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def seconds(value: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m)?\s*", value)
    if not m:
        raise SystemExit(f"bench: cannot read duration {value!r} (use e.g. 10s, 1500ms, 1m)")
    n = float(m.group(1))
    return {"ms": n / 1000, "m": n * 60}.get(m.group(2) or "s", n)


@dataclass
class Config:
    duration: float
    warmup: float
    hash_duration: float
    connections: int
    threads: int
    login_users: int
    workers: int
    backends: list[str]
    endpoints: list[str]
    peers: list[str]
    output: str
    keep: bool
    pg_admin_url: str | None
    ref: str | None
    wait_idle: float = 0.0
    grown: bool = False
    grown_scale: float = 1.0
    retries: int = 2
    noise_limit: float = 0.25
    rounds: int = 2
    cold_starts: int = 3
    src: Path = ROOT / "src"

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        duration = seconds(env.get("BENCH_DURATION", "10s"))
        connections = int(env.get("BENCH_CONNECTIONS", "32"))
        threads = int(env.get("BENCH_THREADS", "1"))
        if connections < threads:
            raise SystemExit("bench: BENCH_CONNECTIONS must be at least BENCH_THREADS")
        backends = [b for b in env.get("BENCH_BACKENDS", "sqlite,postgres").split(",") if b]
        grown = env.get("BENCH_GROWN") == "1"
        endpoints = [e for e in env.get("BENCH_ENDPOINTS", ",".join(GROWN_ENDPOINTS if grown else ENDPOINTS))
                     .split(",") if e]
        for b in backends:
            if b not in RATIO_TARGET:
                raise SystemExit(f"bench: unknown backend {b!r} (sqlite, postgres)")
        for e in endpoints:
            if e not in ENDPOINTS:
                raise SystemExit(f"bench: unknown endpoint {e!r} ({', '.join(ENDPOINTS)})")
        peers = [p for p in env.get("BENCH_PEERS", ",".join(PEERS)).split(",") if p]
        for p in peers:
            if p not in PEERS:
                raise SystemExit(f"bench: unknown peer {p!r} ({', '.join(PEERS)})")
        if "postgres" not in backends and not env.get("BENCH_PG_ADMIN_URL"):
            peers = [p for p in peers if p != "dot-postgres"]
        return cls(duration=duration, warmup=seconds(env.get("BENCH_WARMUP", "2s")),
                   hash_duration=seconds(env.get("BENCH_HASH_DURATION", str(duration))),
                   connections=connections, threads=threads,
                   login_users=int(env.get("BENCH_LOGIN_USERS", str(connections))),
                   workers=int(env.get("BENCH_WORKERS", str(os.cpu_count() or 1))),
                   backends=backends, endpoints=endpoints, peers=peers,
                   output=env.get("BENCH_OUTPUT", str(ROOT / "docs" / ("benchmarks-grown.md" if grown
                                                                         else "benchmarks.md"))),
                   grown=grown, grown_scale=float(env.get("BENCH_GROWN_SCALE", "1")),
                   keep=env.get("BENCH_KEEP") == "1", pg_admin_url=env.get("BENCH_PG_ADMIN_URL") or None,
                   ref=env.get("BENCH_REF") or env.get("BENCH_SRC") or None,
                   wait_idle=seconds(env.get("BENCH_WAIT_IDLE", "0")),
                   retries=int(env.get("BENCH_RETRIES", "2")),
                   noise_limit=float(env.get("BENCH_NOISE_LIMIT", "0.25")),
                   cold_starts=max(1, int(env.get("BENCH_COLD_STARTS", "3"))),
                   rounds=max(1, int(env.get("BENCH_ROUNDS", "2"))))


# -- small HTTP helpers (setup only; the load comes from wrk and loadgen) -------------------------
def http(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes = b"",
         timeout: float = 10.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = bytearray()
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = bytes(data).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = bytearray(), payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        payload = bytes(out)
    return status, payload


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, started: float, limit: float = 60.0) -> float:
    """Seconds from `started` to the first 200 from `url`; polls every 5 ms."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            status, _ = http("GET", url, timeout=1.0)
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no 200 from {url} within {limit:.0f} s")
        time.sleep(0.005)


def proc_children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return sorted(out)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (children not waited for are not included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat; idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_probe_ms(samples: int = 5) -> float:
    """How fast a core is right now: the median CPU milliseconds (of this process, so waiting does not
    count) of a fixed piece of work, pure Python and SHA-256, ~20 ms each. On a virtual machine whose
    host is shared it moves with the neighbours' load, which neither the idle check nor steal time
    shows: on this project's 2-core VMs the same work has varied by 60 % within one quiet minute.
    Taken right before and after each measured run (the servers idle meanwhile)."""
    times = []
    for _ in range(samples):
        started = time.process_time()
        x = 0
        for i in range(150_000):
            x += i * i % 7
        block = b"x" * 1024
        for _ in range(1500):
            block = hashlib.sha256(block).digest() * 32
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def postgres_pids(comm: str = "postgres") -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def wait_idle(limit: float) -> float:
    """Waits (at most `limit` s) until the machine was <10 % busy over 3 s; returns the last busy share."""
    deadline = time.time() + limit
    ncpu = os.cpu_count() or 1
    while True:
        b0 = machine_busy_seconds()
        time.sleep(3)
        share = (machine_busy_seconds() - b0) / (3 * ncpu)
        if share < 0.10 or time.time() >= deadline:
            return share
        log(f"machine {100 * share:.0f} % busy with other work; waiting for it to go idle")


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def rss_by_kind(pid: int) -> dict[str, float]:
    """A process's RSS (MB) by kind of mapping: thread stacks (8 MiB anonymous, as glibc makes them,
    its cache of exited threads' stacks included), the main heap, other anonymous memory (Python's
    arenas, malloc's thread arenas and large blocks), and files (libraries, mapped data)."""
    kinds: dict[str, float] = {}
    kind = "files"
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                name = fields[5] if len(fields) > 5 else ""
                kind = ("heap" if name == "[heap]" else "stack" if name == "[stack]" else
                        "thread stacks" if not name and end - start == 8 << 20 else
                        "anonymous" if not name or name.startswith("[") else "files")
            elif fields[0] == "Rss:":
                kinds[kind] = kinds.get(kind, 0.0) + int(fields[1]) * 1024 / 1e6
    except OSError:
        pass
    return kinds


def kinds_text(kinds: dict[str, float]) -> str:
    return " · ".join(f"{kind} {kinds[kind]:.0f}" for kind in RSS_KINDS if kinds.get(kind, 0) >= 0.5)


RSS_KINDS = ("files", "heap", "anonymous", "thread stacks", "stack")


def children_cpu() -> float:
    """CPU of our finished children (wrk, loadgen) plus this process (token fetching)."""
    import resource

    c, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return c.ru_utime + c.ru_stime + me.ru_utime + me.ru_stime


def mem_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB (10^6 bytes)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024 / 1e6
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


# -- servers ------------------------------------------------------------------------------------
@dataclass
class Server:
    key: str  # sqlite | postgres | peer
    label: str
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    cold_start_s: float = 0.0
    cold_starts_s: list[float] = field(default_factory=list)  # idbroker: every start; cold_start_s is the median
    svc1_secret: str = ""
    web1_secret: str = ""
    password: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, Any] = field(default_factory=dict)
    cc_resource: str = RS_JWT
    introspect_resource: str = RS_JWT
    kind: str = "idbroker"  # idbroker | oidc | dot
    discovery_path: str = "/.well-known/openid-configuration"
    expect: dict[str, str] = field(default_factory=dict)  # endpoint -> text a good response body holds
    upstream: Server | None = None  # idbroker: the upstream provider of its federated sign-in row, once started

    @property
    def is_peer(self) -> bool:
        return self.kind != "idbroker"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.upstream is not None:
            self.upstream.stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session, started by us
        except ProcessLookupError:
            return
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def idbroker_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run([IDBROKER, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"idbroker {' '.join(args[:2])} failed: {out.stderr or out.stdout}")
    return json.loads(out.stdout)


def cold_start_text(srv: Server) -> str:
    """"0.83 s", or with several starts their median and each: "0.83 s (0.81, 0.83, 0.90)"."""
    each = srv.cold_starts_s
    return f"{srv.cold_start_s:.2f} s" + (f" ({', '.join(f'{s:.2f}' for s in each)})" if len(each) > 1 else "")


def start_idbroker(key: str, cfg: Config, tmp: Path, database_url: str | None) -> Server:
    port = free_port()
    workdir = tmp / f"idbroker-{key}"
    (workdir / "data").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IDBROKER_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    if cfg.ref:
        env["PYTHONPATH"] = str(cfg.src)
    env.update(IDBROKER_DATA_DIR=str(workdir / "data"), IDBROKER_ISSUER=f"http://127.0.0.1:{port}",
               IDBROKER_LOG_LEVEL="WARNING")
    if database_url:
        env["IDBROKER_DATABASE_URL"] = database_url
    label = IDBROKER_LABEL[key]
    srv = Server(key=key, label=label, port=port, workdir=workdir, env=env)
    log(f"{label}: registering clients and the user (migrations run here)")
    srv.svc1_secret = idbroker_cli(env, "clients", "add", "--client-id", "svc1", "--grant-type", "client_credentials",
                                   "--scope", "api:read", "--scope", "api:write")["client_secret"]
    srv.web1_secret = idbroker_cli(env, "clients", "add", "--client-id", "web1", "--redirect-uri", REDIRECT_URI,
                                   "--first-party", "--grant-type", "authorization_code",
                                   "--grant-type", "refresh_token",
                                   # ES256 ID tokens, as the oidc-provider peer's web1 registers them
                                   "--id-token-alg", "ES256")["client_secret"]
    srv.password = "bench-" + secrets.token_urlsafe(12)
    add_users(env, USER_EMAIL, srv.password, max(cfg.login_users, cfg.connections))
    idbroker_cli(env, "keys", "list")  # signing keys exist before the timed start, as on any restart
    log(f"{label}: starting `idbroker serve --workers {cfg.workers}` on port {port}"
        + (f", {cfg.cold_starts} times (stopped in between)" if cfg.cold_starts > 1 else ""))
    logf = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    for attempt in range(cfg.cold_starts):
        if attempt:
            srv.stop()
            time.sleep(0.5)
        started = time.perf_counter()
        srv.proc = subprocess.Popen([IDBROKER, "serve", "--port", str(port), "--workers", str(cfg.workers)],
                                    env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=workdir)
        srv.cold_starts_s.append(wait_ready(f"{srv.origin}/healthz", srv.proc, started))
        # Every worker must be up before the load starts (the first 200 proves one of them).
        deadline = time.time() + 60
        while len(proc_children(srv.proc.pid)) < cfg.workers and time.time() < deadline:
            time.sleep(0.05)
    srv.cold_start_s = statistics.median(srv.cold_starts_s)
    log(f"{label}: first 200 from /healthz after {cold_start_text(srv)}")
    return srv


def start_peer(key: str, cfg: Config, tmp: Path, redirect_uri: str = REDIRECT_URI, name: str | None = None
               ) -> Server:
    """oidc-provider: `oidc-single` is provider.mjs alone (in-memory adapter); `oidc-cluster` is cluster.mjs
    (workers = cores, all on the Redis adapter at BENCH_REDIS_URL, flushed at start). web1 is registered for
    `redirect_uri`; `name` names its directory (default: `key`)."""
    port = free_port()
    workdir = tmp / (name or key)
    workdir.mkdir()
    srv = Server(key=key, label=PEER_LABEL[key], port=port, workdir=workdir, kind="oidc",
                 cc_resource=RS_JWT, introspect_resource=RS_OPAQUE)
    srv.svc1_secret, srv.web1_secret, srv.password = (secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                                                      "any-password")
    env = dict(os.environ, PORT=str(port), NODE_ENV="production", DEV_INTERACTIONS="1",
               SVC1_SECRET=srv.svc1_secret, WEB1_SECRET=srv.web1_secret, WEB1_REDIRECT_URI=redirect_uri)
    script = "provider.mjs"
    if key == "oidc-cluster":
        script = "cluster.mjs"
        env.update(WORKERS=str(cfg.workers), REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    srv.env = env
    log(f"{key}: starting node {script} on port {port}")
    logf = open(workdir / "server.log", "wb")  # noqa: SIM115
    started = time.perf_counter()
    srv.proc = subprocess.Popen(["node", str(PEER_DIR / script)], env=env, stdout=logf,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=PEER_DIR)
    srv.cold_start_s = wait_ready(f"{srv.origin}/.well-known/openid-configuration", srv.proc, started)
    if key == "oidc-cluster":
        wait_workers(srv, cfg.workers)
    log(f"{key}: first 200 from discovery after {srv.cold_start_s:.2f} s")
    return srv


def ensure_upstream(srv: Server, cfg: Config, tmp: Path) -> Server:
    """idbroker's upstream provider for the federated sign-in row: provider.mjs alone (in-memory, its dev login
    form), whose web1 comes back to idbroker's callback; registered in idbroker as UPSTREAM_ID (`idbroker idp
    add`, kind oidc: discovery, PKCE, the ID token checked against the upstream's JWKS)."""
    if srv.upstream is None:
        up = start_peer("oidc-single", cfg, tmp, redirect_uri=f"{srv.origin}/idp/{UPSTREAM_ID}/callback",
                        name=f"upstream-of-{srv.key}")
        up.label = "oidc-provider (upstream, 1 process, memory)"
        srv.upstream = up
        idbroker_cli(srv.env, "idp", "add", "--id", UPSTREAM_ID, "--kind", "oidc", "--name", "Bench upstream",
                     "--issuer", up.origin, "--client-id", "web1", "--client-secret", up.web1_secret)
        log(f"{srv.label}: upstream provider {UPSTREAM_ID} at {up.origin}; waiting {UPSTREAM_CACHE_S:.0f} s for "
            "the workers to see it")
        time.sleep(UPSTREAM_CACHE_S + 0.5)
    return srv.upstream


def wait_workers(srv: Server, count: int) -> None:
    """Every worker must be up before the load starts (the first 200 proves one of them)."""
    assert srv.proc is not None
    deadline = time.time() + 60
    while len(proc_children(srv.proc.pid)) < count and time.time() < deadline:
        time.sleep(0.05)


def start_dot(key: str, cfg: Config, tmp: Path, database_url: str | None) -> Server:
    """django-oauth-toolkit (bench/peer/dot, its own venv bench/.venv-dot made by bench/run) on Granian,
    WSGI, workers = cores; migrated and set up (clients, users) before the timed start."""
    port = free_port()
    workdir = tmp / key
    (workdir / "data").mkdir(parents=True)
    srv = Server(key=key, label=PEER_LABEL[key], port=port, workdir=workdir, kind="dot",
                 discovery_path="/o/.well-known/openid-configuration",
                 expect={"introspection": '"active": true'})
    srv.svc1_secret, srv.web1_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    srv.password = "bench-" + secrets.token_urlsafe(12)
    m, t, p = argon2_params(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDBROKER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(DJANGO_SETTINGS_MODULE="dotpeer.settings", DOT_DATA_DIR=str(workdir / "data"),
               DOT_ARGON2=f"{m},{t},{p}", DOT_SECRET_KEY=secrets.token_urlsafe(40))
    if database_url:
        env["DOT_DATABASE_URL"] = database_url
    srv.env = env
    log(f"{key}: migrating and creating clients and users")
    for args in (["migrate", "-v0"],
                 ["bench_setup", "--svc1-secret", srv.svc1_secret, "--web1-secret", srv.web1_secret,
                  "--redirect-uri", REDIRECT_URI, "--username", USER_EMAIL, "--password", srv.password,
                  "--users", str(max(cfg.login_users, cfg.connections))]):
        out = subprocess.run([str(DOT_PYTHON), "manage.py", *args], env=env, cwd=DOT_DIR, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"{key}: manage.py {args[0]} failed: {out.stderr[-2000:]}")
    log(f"{key}: starting granian (WSGI, {cfg.workers} workers) on port {port}")
    logf = open(workdir / "server.log", "wb")  # noqa: SIM115
    started = time.perf_counter()
    srv.proc = subprocess.Popen([str(DOT_GRANIAN), "--interface", "wsgi", "--workers", str(cfg.workers),
                                 "--host", "127.0.0.1", "--port", str(port), "--no-ws", "dotpeer.wsgi:application"],
                                env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=DOT_DIR)
    srv.cold_start_s = wait_ready(f"{srv.origin}{srv.discovery_path}", srv.proc, started)
    wait_workers(srv, cfg.workers)
    log(f"{key}: first 200 from discovery after {srv.cold_start_s:.2f} s")
    return srv


# -- PostgreSQL -----------------------------------------------------------------------------------
def pg_create(admin_url: str) -> tuple[str, str, dict[str, str]]:
    import psycopg

    name = "idbroker_bench_" + secrets.token_hex(4)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        info = {"version": conn.execute("SHOW server_version").fetchone()[0]}
        for setting in ("fsync", "synchronous_commit", "shared_buffers", "max_connections"):
            info[setting] = conn.execute(f"SHOW {setting}").fetchone()[0]
    parts = urlsplit(admin_url)
    url = f"postgresql+psycopg://{parts.netloc}/{name}"
    return name, url, info


def pg_drop(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- per-server preparation ---------------------------------------------------------------------
def prepare(srv: Server) -> None:
    """Endpoints from discovery; the client_credentials request body."""
    status, body = http("GET", f"{srv.origin}{srv.discovery_path}")
    if status != 200:
        raise RuntimeError(f"{srv.label}: discovery answered {status}")
    srv.meta = json.loads(body)
    if srv.kind == "dot":  # DOT serves introspection (RFC 7662) but does not list it in its discovery
        srv.meta.setdefault("introspection_endpoint", f"{srv.origin}/o/introspect/")
    srv.meta["cc_body"] = urlencode({"grant_type": "client_credentials", "scope": "api:read api:write",
                                     "resource": srv.cc_resource})


def client_credentials_token(srv: Server, resource: str) -> str:
    body = urlencode({"grant_type": "client_credentials", "scope": "api:read api:write", "resource": resource})
    status, payload = http("POST", srv.meta["token_endpoint"], body=body.encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": basic("svc1", srv.svc1_secret)})
    if status != 200:
        raise RuntimeError(f"{srv.label}: client_credentials ({resource}) answered {status}: {payload[:300]!r}")
    return json.loads(payload)["access_token"]


def add_users(env: dict[str, str], template: str, password: str, count: int) -> None:
    """The bench accounts, created in one process (the CLI would start one per user)."""
    script = ("import sys\nfrom idbroker.provider import Provider\nfrom idbroker.settings import load_settings\n"
              "p = Provider(load_settings())\n"
              "for n in range(int(sys.argv[3])):\n"
              "    p.users.create(sys.argv[1].format(n=n), sys.argv[2], email_verified=True)\n")
    subprocess.run([str(ROOT / ".venv/bin/python"), "-c", script, template, password, str(count)], env=env,
                   check=True, stdout=subprocess.DEVNULL)


def loadgen_args(srv: Server, mode: str, **extra: Any) -> list[str]:
    args = [mode, "--issuer", srv.origin, "--authorize", srv.meta["authorization_endpoint"],
            "--token", srv.meta["token_endpoint"], "--client-id", "web1", "--redirect-uri", REDIRECT_URI,
            "--scope", SCOPE_LOGIN, "--username", USER_EMAIL]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def login_tokens(srv: Server, count: int) -> list[dict]:
    ns = loadgen.build_parser().parse_args(loadgen_args(srv, "tokens", count=count, users=8))
    ns.client_secret, ns.password = srv.web1_secret, srv.password
    return asyncio.run(loadgen.run_tokens(ns))


# -- load ----------------------------------------------------------------------------------------
@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    extra: dict[str, Any] = field(default_factory=dict)
    server_cpu: float = 0.0  # CPU seconds the server used per second of the run (2.0 = two cores busy)
    other_cpu: float = 0.0  # the same for everything that is neither the servers nor the load generator
    probe_ms: float = 0.0  # cpu_probe_ms() around the run: the core's speed at the time (lower is faster)
    runtime: dict[str, dict[float, float]] = field(default_factory=dict)  # idbroker: pause / lag histograms
    rounds_rps: list[float] = field(default_factory=list)  # req/s of each round (measure_rounds), in order


# -- where the tail comes from: idbroker's own runtime histograms ------------------------------------
RUNTIME_SERIES = {"gc_full": ("idbroker_gc_pause_seconds", {"generation": "2"}),
                  "gc_young": ("idbroker_gc_pause_seconds", {"generation": ("0", "1")}),
                  "loop_lag": ("idbroker_event_loop_lag_seconds", {}),
                  "write_wait": ("idbroker_write_turn_wait_seconds", {}),
                  "batch": ("idbroker_one_time_batch_seconds", {})}


def runtime_histograms(srv: Server) -> dict[str, dict[float, float]] | None:
    """idbroker's collector-pause and event-loop-lag histograms from /metrics (summed over its workers):
    series -> {bucket upper bound: cumulative count}. None for a peer or when /metrics does not answer."""
    if srv.is_peer:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    try:
        status, body = http("GET", f"{srv.origin}/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    out: dict[str, dict[float, float]] = {k: {} for k in RUNTIME_SERIES}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            for key, (name, labels) in RUNTIME_SERIES.items():
                if sample.name != name + "_bucket":
                    continue
                if all(sample.labels.get(k) in (v if isinstance(v, tuple) else (v,)) for k, v in labels.items()):
                    le = float(sample.labels["le"])
                    out[key][le] = out[key].get(le, 0.0) + sample.value
    return out


def histogram_delta(after: dict[str, dict[float, float]] | None,
                    before: dict[str, dict[float, float]]) -> dict[str, dict[float, float]]:
    if after is None:
        return {}
    return {key: {le: n - before.get(key, {}).get(le, 0.0) for le, n in sorted(buckets.items())}
            for key, buckets in after.items()}


def _upto(buckets: dict[float, float], limit: float) -> float:
    """A cumulative histogram's count at `limit` (the largest bucket bound at or below it)."""
    return max((n for le, n in buckets.items() if le <= limit + 1e-12), default=0.0)


def runtime_rows(cfg: Config, servers: dict[str, Server], results: dict) -> list[str]:
    """Per endpoint and idbroker server: how many collector pauses and late loop wake-ups fell in each
    latency band during the measured run (the request latencies are in the table above)."""
    bands = [(0.0, 0.001), (0.001, 0.005), (0.005, 0.01), (0.01, 0.025), (0.025, 0.05), (0.05, float("inf"))]
    names = ["< 1 ms", "1-5 ms", "5-10 ms", "10-25 ms", "25-50 ms", "> 50 ms"]
    rows = ["| endpoint | server | cause | " + " | ".join(names) + " | per second ≥ 5 ms |",
            "| --- | --- | --- | " + " | ".join("---:" for _ in names) + " | ---: |"]
    labels = {"gc_full": "full collections (gen 2)", "gc_young": "young collections (gen 0, 1)",
              "loop_lag": "event-loop lag (a probe every 50 ms)",
              "write_wait": "writer's wait for its turn (SQLite writer lock)",
              "batch": "one-time batch, its turn to its commit (refresh rotations, code redemptions)"}
    for ep in cfg.endpoints:
        for key in cfg.backends:
            r = results.get(key, {}).get(ep)
            if r is None or not r.runtime:
                continue
            for cause, buckets in r.runtime.items():
                if not buckets.get(float("inf")) and cause in ("write_wait", "batch"):
                    continue  # PostgreSQL, or nothing written; no refresh or code exchange
                total = buckets.get(float("inf"), 0.0)
                counts = [(total if hi == float("inf") else _upto(buckets, hi)) - _upto(buckets, lo)
                          for lo, hi in bands]
                slow = total - _upto(buckets, 0.005)
                rows.append(f"| {ep} | {servers[key].label} | {labels[cause]} | "
                            + " | ".join(f"{n:.0f}" for n in counts) + f" | {slow / cfg.duration:.1f} |")
    return rows


def wrk(url: str, script: str, args: list[str], duration: float, cfg: Config,
        mark: Callable[[], None] | None = None) -> dict[str, Any]:
    if mark:
        mark()
    cmd = ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
           "--latency", "-s", str(LUA / script), url, "--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    return json.loads(line[5:])


def wrk_result(data: dict[str, Any]) -> Result:
    errors = data["connect_err"] + data["read_err"] + data["write_err"] + data["timeout_err"] + data["app_errors"]
    return Result(rps=data["rps"], p50_ms=data["p50_ms"], p99_ms=data["p99_ms"], errors=errors,
                  requests=data["requests"], extra=data)


def run_endpoint(srv: Server, endpoint: str, cfg: Config, duration: float, tmp: Path,
                 mark: Callable[[], None] | None = None) -> Result:
    """One wrk / loadgen run. Tokens are fetched right before it: the peer's in-memory adapter is an LRU
    of 1000 entries that earlier load would have flushed them from."""
    m = srv.meta
    svc1 = basic("svc1", srv.svc1_secret)
    if endpoint == "discovery":
        return wrk_result(wrk(f"{srv.origin}{srv.discovery_path}", "req.lua",
                              ["GET", '"issuer"'], duration, cfg, mark))
    if endpoint == "jwks":
        return wrk_result(wrk(m["jwks_uri"], "req.lua", ["GET", '"keys"'], duration, cfg, mark))
    if endpoint == "client_credentials":
        return wrk_result(wrk(m["token_endpoint"], "req.lua", ["POST", '"access_token"', svc1, m["cc_body"]],
                              duration, cfg, mark))
    if endpoint == "introspection":
        return wrk_result(wrk(m["introspection_endpoint"], "req.lua",
                              ["POST", srv.expect.get("introspection", '"active":true'), svc1,
                               urlencode({"token": client_credentials_token(srv, srv.introspect_resource)})],
                              duration, cfg, mark))
    if endpoint == "userinfo":
        token = login_tokens(srv, 1)[0]["access_token"]
        return wrk_result(wrk(m["userinfo_endpoint"], "req.lua", ["GET", '"sub"', f"Bearer {token}"], duration, cfg,
                              mark))
    if endpoint == "refresh":
        tokens = [t["refresh_token"] for t in login_tokens(srv, 2 * cfg.connections)]
        prefix = tmp / f"refresh-{srv.key}"
        for t in range(cfg.threads):
            prefix.with_name(f"{prefix.name}.{t}").write_text("\n".join(tokens[t::cfg.threads]) + "\n")
        return wrk_result(wrk(m["token_endpoint"], "refresh.lua", [basic("web1", srv.web1_secret), str(prefix)],
                              duration, cfg, mark))
    if endpoint in FLOWS:
        args = loadgen_args(srv, "login", users=cfg.login_users, duration=duration)
        if endpoint == "federated":
            args += ["--upstream", ensure_upstream(srv, cfg, tmp).origin, "--idp-hint", UPSTREAM_ID,
                     "--username", FEDERATED_USER]
        env = dict(os.environ, BENCH_WEB1_SECRET=srv.web1_secret, BENCH_PASSWORD=srv.password)
        if mark:
            mark()
        out = subprocess.run([sys.executable, str(BENCH / "loadgen.py"), *args], env=env, capture_output=True,
                             text=True, timeout=duration + 120)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr[-2000:]}")
        data = json.loads(line[5:])
        return Result(rps=data["rps"], p50_ms=data["p50_ms"], p99_ms=data["p99_ms"], errors=data["errors"],
                      requests=data["flows"], extra=data)
    raise ValueError(endpoint)


def measure(srv: Server, ep: str, cfg: Config, tmp: Path, duration: float, warmup: float) -> Result:
    """Warm-up, then the measured run, with the server's CPU and everything else's CPU over it."""
    if warmup > 0:
        run_endpoint(srv, ep, cfg, warmup, tmp)
    assert srv.proc is not None
    pids = [srv.proc.pid, *proc_children(srv.proc.pid)]
    if srv.key == "oidc-cluster":  # its store is part of it, as PostgreSQL is counted with idbroker's
        pids += postgres_pids("redis-server")
    m: dict[str, float] = {}

    def upstream_cpu() -> float:  # the federated row's upstream provider
        return cpu_seconds([srv.upstream.proc.pid]) if srv.upstream is not None and srv.upstream.proc else 0.0

    def mark() -> None:  # as the load starts (tokens are fetched by then)
        m.update(cpu=cpu_seconds(pids), pg=cpu_seconds(postgres_pids()), busy=machine_busy_seconds(),
                 kids=children_cpu(), up=upstream_cpu(), t=time.perf_counter())

    runtime_before = runtime_histograms(srv)
    probe_before = cpu_probe_ms()
    r = run_endpoint(srv, ep, cfg, duration, tmp, mark)
    wall = time.perf_counter() - m["t"]
    if runtime_before is not None:
        r.runtime = histogram_delta(runtime_histograms(srv), runtime_before)
    server = cpu_seconds(pids) - m["cpu"]
    pg = cpu_seconds(postgres_pids()) - m["pg"]
    upstream = upstream_cpu() - m["up"]
    ours = server + pg + upstream + (children_cpu() - m["kids"])
    if ep == "federated" and r.requests:  # CPU ms per sign-in: idbroker's workers, its PostgreSQL, the upstream
        r.extra["cpu_ms"] = {"idbroker": 1e3 * server / r.requests, "upstream": 1e3 * upstream / r.requests,
                             "postgres": 1e3 * pg / r.requests if srv.key == "postgres" else 0.0}
    r.server_cpu = server / wall
    r.other_cpu = max(0.0, (machine_busy_seconds() - m["busy"] - ours) / wall)
    r.probe_ms = (probe_before + cpu_probe_ms()) / 2  # after the CPU readings: the probe is not other work
    its_pg = f" + PostgreSQL {pg / wall:.2f}" if srv.key == "postgres" else ""
    log(f"{ep:18s} {srv.label:24s} {r.rps:10.1f} req/s  p50 {r.p50_ms:8.2f} ms  p99 {r.p99_ms:8.2f} ms  "
        f"errors {r.errors}  server CPU {r.server_cpu:.2f}{its_pg}  other work {r.other_cpu:.2f}  "
        f"probe {r.probe_ms:.1f} ms")
    if r.errors and ep in FLOWS:
        log(f"  login errors, e.g.: {r.extra.get('error_samples')}")
    if srv.key != "oidc-single":  # every server with workers
        srv.rss.setdefault("after", {})[ep] = after = [mem_mb(p)[0] for p in proc_children(srv.proc.pid)]
        log(f"  worker RSS after {ep}: " + ", ".join(f"{mb:.0f} MB" for mb in after))
    return r


def measure_all(servers: dict[str, Server], order: list[str], cfg: Config, tmp: Path,
                results: dict[str, dict[str, Result]], other_cpu: list[float]) -> None:
    """Every endpoint on every server in turn; an endpoint again (all servers) when other work was noisy."""
    for ep in cfg.endpoints:
        best: dict[str, Result] | None = None
        keys = [k for k in order if not servers[k].is_peer] if ep == "federated" else order  # peers federate nothing
        for attempt in range(1 + cfg.retries):
            got = measure_rounds(servers, keys, ep, cfg, tmp)
            noise = max(r.other_cpu for r in got.values())
            if best is None or noise < max(r.other_cpu for r in best.values()):
                best = got
            if noise <= cfg.noise_limit or attempt == cfg.retries:
                break
            log(f"{ep}: other work used up to {noise:.2f} cores during the runs; measuring {ep} again "
                f"({attempt + 2} of {1 + cfg.retries})")
            wait_idle(60)
        assert best is not None
        for key, r in best.items():
            results.setdefault(key, {})[ep] = r
            other_cpu.append(r.other_cpu)


def measure_rounds(servers: dict[str, Server], order: list[str], ep: str, cfg: Config, tmp: Path
                   ) -> dict[str, Result]:
    """One endpoint on every server in `cfg.rounds` rounds of duration ÷ rounds each, the servers in
    turn and their order reversed every other round (A B C, C B A, ...): a host that speeds up or
    slows down while the endpoint is measured then favours no server, where one run each would hand
    the whole drift to whichever server came last. Each server warms up once, before its first round."""
    runs: dict[str, list[Result]] = {key: [] for key in order}
    share = cfg.duration / cfg.rounds
    for i in range(cfg.rounds):
        for key in (order if i % 2 == 0 else order[::-1]):
            runs[key].append(measure(servers[key], ep, cfg, tmp, share, cfg.warmup if i == 0 else 0.0))
    return {key: combined(rs) for key, rs in runs.items()}


def combined(runs: list[Result]) -> Result:
    """A server's rounds as one result: req/s over all of them (the rounds are equally long), the
    median of their p50 and p99, counts and histograms summed, CPU and probe averaged."""
    runtime: dict[str, dict[float, float]] = {}
    for r in runs:
        for key, buckets in r.runtime.items():
            into = runtime.setdefault(key, {})
            for le, n in buckets.items():
                into[le] = into.get(le, 0.0) + n
    return Result(rps=statistics.fmean(r.rps for r in runs), p50_ms=statistics.median(r.p50_ms for r in runs),
                  p99_ms=statistics.median(r.p99_ms for r in runs), errors=sum(r.errors for r in runs),
                  requests=sum(r.requests for r in runs),
                  extra={**runs[-1].extra, "rounds": [r.extra for r in runs]},
                  server_cpu=statistics.fmean(r.server_cpu for r in runs),
                  other_cpu=statistics.fmean(r.other_cpu for r in runs),
                  probe_ms=statistics.fmean(r.probe_ms for r in runs), runtime=runtime,
                  rounds_rps=[r.rps for r in runs])


def round_ratios(mine: Result, theirs: Result) -> list[float]:
    """mine ÷ theirs in each round (the two were measured side by side in it)."""
    return [a / b for a, b in zip(mine.rounds_rps, theirs.rounds_rps, strict=False) if b]


def spread(ratios: list[float]) -> str:
    """' (rounds 0.95–1.08)' when there was more than one round."""
    return f" (rounds {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""


# -- grown store ----------------------------------------------------------------------------------
def fill_and_explain(url: str, cfg: Config) -> dict[str, Any]:
    """bench/fill_store.py on a live server's store (idle meanwhile), then the hot statements' plans."""
    log(f"--grown: filling {url.split('://')[0]} (scale {cfg.grown_scale}); the server is idle meanwhile")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(BENCH / "fill_store.py"), url, "--scale", str(cfg.grown_scale),
                          "--json"], capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"fill_store.py failed: {out.stderr[-2000:]}")
    seconds_taken = time.perf_counter() - started
    log(f"--grown: filled in {seconds_taken:.0f} s")
    settle_store(url)
    return {"seconds": seconds_taken, "plans": json.loads(out.stdout.strip().splitlines()[-1]),
            "counts": {k: round(v * cfg.grown_scale) for k, v in GROWN_COUNTS.items()}}


def settle_store(url: str) -> None:
    """After the fill, what a store that grew over months has already done: the fill's writes
    checkpointed (PostgreSQL's checkpointer, SQLite's WAL folded into the database), then the machine
    idle again, so that the grown runs measure the store's size, not the fill's aftermath competing
    for the cores."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    else:
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    share = wait_idle(120)
    log(f"--grown: store checkpointed; machine {100 * share:.0f} % busy before the grown runs")


GROWN_COUNTS = {"users": 1_000_000, "live refresh tokens (and grants)": 1_000_000, "audit events": 5_000_000,
                "revoked jtis": 100_000}
GROWN_FACTOR = 1.2  # grown p50 and p99 ≤ 1.2 × the empty store's, same run
GROWN_ENDPOINTS = ["login", "refresh", "introspection", "userinfo"]


def evaluate_grown(empty: dict, grown: dict, servers: dict[str, Server], cfg: Config) -> list[dict]:
    checks = []
    for key in cfg.backends:
        for ep in cfg.endpoints:
            a, b = empty.get(key, {}).get(ep), grown.get(key, {}).get(ep)
            if a is None or b is None:
                continue
            for name, x, y in (("p50", a.p50_ms, b.p50_ms), ("p99", a.p99_ms, b.p99_ms)):
                ratio = y / x if x else float("inf")
                errors = a.errors + b.errors
                checks.append({"target": f"{ep} {name} grown ÷ empty, {servers[key].label}",
                               "want": f"≤ {GROWN_FACTOR} ×",
                               "got": f"{ratio:.2f} × ({x:.1f} → {y:.1f} ms)"
                                      + (f", {errors} errors" if errors else ""),
                               "ok": ratio <= GROWN_FACTOR and errors == 0})
    return checks


def grown_table(cfg: Config, servers: dict[str, Server], empty: dict, grown: dict) -> list[str]:
    L = ["| endpoint | server | req/s empty → grown | p50 ms empty → grown | p50 ratio | p99 ms empty → grown "
         "| p99 ratio | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for ep in cfg.endpoints:
        for key in cfg.backends:
            a, b = empty.get(key, {}).get(ep), grown.get(key, {}).get(ep)
            if a is None or b is None:
                continue
            L.append(f"| {ep} | {servers[key].label} | {fmt(a.rps)} → {fmt(b.rps)} | {fmt(a.p50_ms, 2)} → "
                     f"{fmt(b.p50_ms, 2)} | {b.p50_ms / a.p50_ms if a.p50_ms else 0:.2f} × | {fmt(a.p99_ms, 2)} → "
                     f"{fmt(b.p99_ms, 2)} | {b.p99_ms / a.p99_ms if a.p99_ms else 0:.2f} × | {a.errors} / {b.errors} |")
    return L


def report_grown(cfg: Config, mach: dict[str, str], servers: dict[str, Server], empty: dict, grown_results: dict,
                 grown: dict[str, dict[str, Any]], checks: list[dict], pg_info: dict | None, started: dt.datetime,
                 elapsed: float) -> str:
    L = ["# Benchmarks: cost as the store grows", "",
         "Generated by `./bench/run --grown` (see `bench/README.md`); do not edit by hand. "
         f"Run of {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min, on {mach['nproc']} cores ({mach['cpu']}); "
         f"load average {mach['loadavg']} at the start, {mach.get('loadavg_end', '?')} at the end; other work "
         f"during the runs: {mach.get('other_cpu', '?')}.", "",
         f"Each endpoint is measured on the empty store (the bench's own clients and {cfg.login_users} users), then "
         "`bench/fill_store.py` adds, while the server stays up and idle:", ""]
    for key in cfg.backends:
        g = grown.get(key)
        if g:
            L.append(f"- {servers[key].label}: " + ", ".join(f"{v:,} {k}" for k, v in g["counts"].items())
                     + f" (scale {cfg.grown_scale}), in {g['seconds']:.0f} s")
    L += ["", "and the same endpoints are measured again, same generator and settings "
          f"(`wrk -t{cfg.threads} -c{cfg.connections}`, {fmt(cfg.warmup, 0)} s warm-up + {fmt(cfg.duration, 0)} s; "
          "login: `bench/loadgen.py`). Refresh and userinfo use tokens of the bench's own users; the filled rows "
          "make every index deeper and the tables larger than the cache, as in production.", "",
          "## Empty → grown", ""]
    L += grown_table(cfg, servers, empty, grown_results)
    L += ["", "## Targets", "", "| target | wanted | measured | |", "| --- | --- | --- | --- |"]
    L += [f"| {c['target']} | {c['want']} | {c['got']} | **{verdict(c['ok'])}** |" for c in checks]
    L += ["", "## Query plans of the hot statements (grown store)", "",
          "EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL (the audit insert rolled back), EXPLAIN QUERY PLAN on SQLite, "
          "on real keys of the filled store."
          + (f" PostgreSQL {pg_info['version']}, shared_buffers={pg_info['shared_buffers']}." if pg_info else ""), ""]
    for key in cfg.backends:
        g = grown.get(key)
        if not g:
            continue
        L += [f"### {servers[key].label}", ""]
        for name, plan in g["plans"].items():
            L += [f"{name}:", "", "```", plan, "```", ""]
    return "\n".join(L) + "\n"


# -- argon2 ceiling -----------------------------------------------------------------------------
def _hash_warm(params: tuple[int, int, int]) -> int:
    from argon2 import PasswordHasher

    PasswordHasher(memory_cost=params[0], time_cost=params[1], parallelism=params[2]).hash("warm-up")
    return os.getpid()


def argon2_params(cfg: Config) -> tuple[int, int, int]:
    sys.path.insert(0, str(cfg.src))
    from idbroker.settings import load_settings

    s = load_settings(env={k: v for k, v in os.environ.items() if k.startswith("IDBROKER_ARGON2_")})
    return s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism


def compile_bytecode(cfg: Config) -> None:
    """Production installs ship bytecode (pip compiles at install time); this environment may not
    (PYTHONDONTWRITEBYTECODE, uv without --compile-bytecode), which would add ~1.5 s of compiling to
    every cold start. Compile the venv and src/ into PYCACHE (a PYTHONPYCACHEPREFIX), not in place."""
    import sysconfig

    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(PYCACHE))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", sysconfig.get_paths()["purelib"],
                    sysconfig.get_paths()["platlib"], str(cfg.src)], env=env, stdout=subprocess.DEVNULL,
                   check=False, timeout=600)


def hashing_ceiling(cfg: Config) -> dict[str, Any]:
    """The quietest of up to 1 + retries measurements (see BENCH_NOISE_LIMIT)."""
    best: dict[str, Any] | None = None
    for attempt in range(1 + cfg.retries):
        busy0, kids0, t0 = machine_busy_seconds(), children_cpu(), time.perf_counter()
        got = _hashing_ceiling(cfg)
        got["other_cpu"] = max(0.0, (machine_busy_seconds() - busy0 - (children_cpu() - kids0))
                               / (time.perf_counter() - t0))
        if best is None or got["other_cpu"] < best["other_cpu"]:
            best = got
        if got["other_cpu"] <= cfg.noise_limit or attempt == cfg.retries:
            break
        log(f"argon2id ceiling: other work used {got['other_cpu']:.2f} cores meanwhile; measuring again")
        wait_idle(60)
    assert best is not None
    return best


def _hashing_ceiling(cfg: Config) -> dict[str, Any]:
    params = argon2_params(cfg)
    procs = os.cpu_count() or 1
    log(f"argon2id ceiling: m={params[0]} KiB t={params[1]} p={params[2]}, {procs} processes, "
        f"{cfg.hash_duration:.0f} s")
    with concurrent.futures.ProcessPoolExecutor(procs) as pool:
        # start every process and import argon2 first, then hash over one common window
        pids = set(pool.map(_hash_warm, [params] * procs * 2))
        start_at = time.time() + 1.0
        stop_at = start_at + cfg.hash_duration
        results = list(pool.map(_hash_worker_window, [params] * procs, [start_at] * procs, [stop_at] * procs))
    if len(pids) < procs:
        log(f"warning: only {len(pids)} of {procs} hashing processes seen during warm-up")
    total = sum(n for n, _ in results)
    window = max(w for _, w in results)
    return {"memory_kib": params[0], "time_cost": params[1], "parallelism": params[2], "processes": procs,
            "hashes": total, "seconds": window, "per_s": total / window,
            "per_process": [n / w for n, w in results]}


def _hash_worker_window(params: tuple[int, int, int], start_at: float, stop_at: float) -> tuple[int, float]:
    from argon2 import PasswordHasher

    ph = PasswordHasher(memory_cost=params[0], time_cost=params[1], parallelism=params[2])
    stored = ph.hash("bench-password")
    while time.time() < start_at:
        time.sleep(0.001)
    n = 0
    start = time.perf_counter()
    while time.time() < stop_at:
        ph.verify(stored, "bench-password")
        n += 1
    return n, time.perf_counter() - start


# -- machine -------------------------------------------------------------------------------------
def cmd_out(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def pkg_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
    os_name = "?"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    peer_pkg = json.loads((PEER_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
    commit = cmd_out("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = cmd_out("git", "-C", str(ROOT), "status", "--porcelain", "--", "src")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": f"{cpu} ({_lscpu_summary()})",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{os_name}, Linux {platform.release()}",
        "python": platform.python_version(),
        "idbroker": f"{pkg_version('idbroker')} @ {commit}{' + uncommitted changes in src/' if dirty else ''}",
        "granian": pkg_version("granian"), "sqlalchemy": pkg_version("SQLAlchemy"),
        "psycopg": pkg_version("psycopg"), "argon2-cffi": pkg_version("argon2-cffi"),
        "starlette": pkg_version("starlette"), "joserfc": pkg_version("joserfc"),
        "sqlite": sqlite3.sqlite_version,
        "node": cmd_out("node", "--version"), "oidc-provider": peer_pkg["version"],
        "wrk": cmd_out("wrk", "--version").splitlines()[0].split(" [")[0] if cmd_out("wrk", "--version") else "?",
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "ioredis": _npm_version("ioredis"),
        "redis": cmd_out("redis-server", "--version").partition("v=")[2].split(" ")[0] or "?",
        "dot": (cmd_out(str(DOT_PYTHON), "-c", "import django, oauth2_provider; print(f'django-oauth-toolkit "
                        "{oauth2_provider.__version__}, Django {django.get_version()}')")
                if DOT_PYTHON.exists() else "?"),
    }


def _npm_version(name: str) -> str:
    try:
        return json.loads((PEER_DIR / "node_modules" / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def _lscpu_summary() -> str:
    info = {}
    for line in cmd_out("lscpu").splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    parts = [info.get("Hypervisor vendor") and f"{info['Hypervisor vendor']} VM",
             info.get("Thread(s) per core") and f"{info['Thread(s) per core']} thread/core",
             info.get("L3 cache") and f"L3 {info['L3 cache']}"]
    return ", ".join(p for p in parts if p) or "lscpu n/a"


# -- report --------------------------------------------------------------------------------------
ENDPOINT_TEXT = {
    "discovery": "discovery (GET /.well-known/openid-configuration)",
    "jwks": "JWKS (GET)",
    "client_credentials": "client_credentials → ES256 JWT (POST token, Basic)",
    "introspection": "introspection of svc1's access token (POST, Basic)",
    "userinfo": "userinfo (GET, Bearer)",
    "refresh": "refresh_token with rotation (POST token, Basic)",
    "login": "login: authorize → form → POST password → code → token",
    "federated": "federated sign-in: authorize (idp_hint) → upstream's login form → callback → code → token",
}


def fmt(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def evaluate(results: dict, servers: dict[str, Server], ceiling: dict | None, cfg: Config) -> list[dict]:
    """Issue 14's targets: ≥ 1.0 × the clustered oidc-provider and ≥ 3 × django-oauth-toolkit on the same
    store (req/s), p99 ≤ the clustered peer's p99, logins at the hashing limit, RSS, cold start."""
    checks = []
    for key in cfg.backends:
        mine = results.get(key, {})
        label = servers[key].label
        for ep in TARGET_ENDPOINTS:
            if ep not in mine:
                continue
            for peer_key, factor in (("oidc-cluster", RATIO_TARGET[key]), (f"dot-{key}", DOT_RATIO_TARGET)):
                theirs = results.get(peer_key, {}).get(ep)
                if theirs is None:
                    continue
                ratio = mine[ep].rps / theirs.rps if theirs.rps else 0.0
                errors = mine[ep].errors + theirs.errors
                checks.append({"target": f"{ep}: {label} ÷ {servers[peer_key].label}", "want": f"≥ {factor:.1f} ×",
                               "got": f"{ratio:.2f} ×" + spread(round_ratios(mine[ep], theirs))
                               + (f" ({errors} errors)" if errors else ""),
                               "ok": ratio >= factor and errors == 0})
            theirs = results.get("oidc-cluster", {}).get(ep)
            if theirs is not None:
                checks.append({"target": f"{ep} p99: {label} vs {servers['oidc-cluster'].label}",
                               "want": "≤ the peer's p99", "got": f"{mine[ep].p99_ms:.1f} ms vs {theirs.p99_ms:.1f} ms",
                               "ok": mine[ep].p99_ms <= theirs.p99_ms})
        if "login" in mine and ceiling:
            want = ceiling["per_s"] / LOGIN_FACTOR
            got = mine["login"].rps
            checks.append({"target": f"password logins/s on {label}",
                           "want": f"≥ {fmt(want)}/s (ceiling {fmt(ceiling['per_s'])}/s ÷ {LOGIN_FACTOR})",
                           "got": f"{fmt(got)}/s = ceiling ÷ {ceiling['per_s'] / got:.2f}" if got else "0",
                           "ok": got >= want and mine["login"].errors == 0})
        cpu = federated_cpu_ms(mine.get("federated"))
        if cpu is not None:
            total = cpu["idbroker"] + cpu["postgres"]
            checks.append({"target": f"federated sign-in: {label}'s server CPU per sign-in, over the upstream's own",
                           "want": f"≤ {FEDERATED_CPU_LIMIT_MS:.0f} ms",
                           "got": f"{total:.1f} ms" + (f" (workers {cpu['idbroker']:.1f} + PostgreSQL "
                                                      f"{cpu['postgres']:.1f})" if cpu["postgres"] else "")
                           + f"; the upstream's own: {cpu['upstream']:.1f} ms",
                           "ok": total <= FEDERATED_CPU_LIMIT_MS and mine["federated"].errors == 0})
        srv = servers[key]
        if srv.rss.get("workers"):
            worst = max(w["rss_mb"] for w in srv.rss["workers"])
            checks.append({"target": f"RSS per worker after the load, {label}", "want": f"≤ {RSS_LIMIT_MB:.0f} MB",
                           "got": f"{worst:.0f} MB (largest worker)", "ok": worst <= RSS_LIMIT_MB})
        checks.append({"target": f"cold start to first 200, {label}", "want": f"≤ {COLD_START_LIMIT_S:.0f} s",
                       "got": cold_start_text(srv), "ok": srv.cold_start_s <= COLD_START_LIMIT_S})
    return checks


def federated_cpu_ms(r: Result | None) -> dict[str, float] | None:
    """CPU ms per federated sign-in (idbroker's workers, its PostgreSQL, the upstream), over the rounds."""
    rounds = [x["cpu_ms"] for x in (r.extra.get("rounds", [r.extra]) if r else []) if "cpu_ms" in x]
    return {k: statistics.fmean(x[k] for x in rounds) for k in rounds[0]} if rounds else None


def federated_lines(cfg: Config, servers: dict[str, Server], results: dict) -> list[str]:
    """The federated sign-in section: rate, latency, and whose CPU a sign-in takes."""
    L = []
    for key in cfg.backends:
        r = results.get(key, {}).get("federated")
        cpu = federated_cpu_ms(r)
        if r is None or cpu is None:
            continue
        last = r.extra  # the last round's generator figures
        per = last.get("http_requests", 0) / last["flows"] if last.get("flows") else 0
        L.append(f"- {servers[key].label}: {fmt(r.rps)} sign-ins/s, p50 {fmt(r.p50_ms, 1)} ms, p99 "
                 f"{fmt(r.p99_ms, 1)} ms, {per:.1f} HTTP requests each (idbroker's and the upstream's); CPU per "
                 f"sign-in: idbroker's workers {cpu['idbroker']:.2f} ms"
                 + (f", its PostgreSQL {cpu['postgres']:.2f} ms" if key == "postgres" else "")
                 + f", the upstream {cpu['upstream']:.2f} ms; errors {r.errors}")
    return L


def summary_table(cfg: Config, servers: dict[str, Server], results: dict) -> list[str]:
    """One column per server (req/s and p99), then idbroker ÷ each peer; Markdown."""
    order = [k for k in [*cfg.backends, *cfg.peers] if k in servers]
    L = ["| endpoint | " + " | ".join(servers[k].label for k in order) + " |",
         "| --- |" + " ---: |" * len(order)]
    for ep in cfg.endpoints:
        cells = []
        for k in order:
            r = results.get(k, {}).get(ep)
            cells.append("" if r is None else f"{fmt(r.rps)}/s, p99 {fmt(r.p99_ms, 1)} ms"
                         + (f", **{r.errors} errors**" if r.errors else ""))
        L.append(f"| {ep} | " + " | ".join(cells) + " |")
    peers = [k for k in cfg.peers if k in servers]
    if peers and cfg.backends:
        L += ["", "| endpoint | " + " | ".join(f"{servers[b].label} ÷ {servers[p].label} (req/s; p99)"
                                              for b in cfg.backends for p in peers) + " |",
              "| --- |" + " ---: |" * (len(cfg.backends) * len(peers))]
        for ep in cfg.endpoints:
            cells = []
            for b in cfg.backends:
                for p in peers:
                    mine, theirs = results.get(b, {}).get(ep), results.get(p, {}).get(ep)
                    if mine is None or theirs is None or not theirs.rps or not theirs.p99_ms:
                        cells.append("")
                    else:
                        cells.append(f"{mine.rps / theirs.rps:.2f} ×{spread(round_ratios(mine, theirs))}; "
                                     f"{mine.p99_ms / theirs.p99_ms:.2f} ×")
            L.append(f"| {ep} | " + " | ".join(cells) + " |")
    return L


def report(cfg: Config, mach: dict[str, str], ceiling: dict | None, servers: dict[str, Server],
           results: dict, checks: list[dict], pg_info: dict | None, started: dt.datetime, elapsed: float,
           scale: dict | None = None) -> str:
    order = [k for k in [*cfg.backends, *cfg.peers] if k in servers]
    L: list[str] = []
    L.append("# Benchmarks")
    L.append("")
    L.append("Generated by `./bench/run` (see `bench/README.md`); do not edit by hand. "
             f"Run of {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min.")
    L.append("")
    L.append("## Machine and versions")
    L.append("")
    L.append("| | |")
    L.append("| --- | --- |")
    for k in ("nproc", "cpu", "memory", "os"):
        L.append(f"| {k} | {mach[k]} |")
    L.append(f"| load average (1, 5, 15 min) | {mach['loadavg']} at the start, {mach.get('loadavg_end', '?')} at the "
             "end |")
    L.append(f"| CPU used by other work during the runs | {mach.get('other_cpu', '?')} (machine-wide busy time minus "
             "the servers', their PostgreSQL's and the load generators'; ~0 on a quiet machine, and any of it "
             "competes for the same cores) |")
    L.append(f"| how fast a core was (`cpu_probe_ms`: the same work, CPU ms) | {mach.get('probe', '?')}: a spread "
             "here is the host's other tenants, which no idle check sees, and moves every figure below with it |")
    L.append(f"| idbroker | {mach['idbroker']}; Granian {mach['granian']}, {cfg.workers} workers; Python "
             f"{mach['python']}; Starlette {mach['starlette']}, SQLAlchemy {mach['sqlalchemy']}, "
             f"joserfc {mach['joserfc']}, argon2-cffi {mach['argon2-cffi']} |")
    L.append(f"| stores | SQLite {mach['sqlite']} (file in a temp dir); "
             + (f"PostgreSQL {pg_info['version']} on 127.0.0.1 (fsync={pg_info['fsync']}, "
                f"synchronous_commit={pg_info['synchronous_commit']}, shared_buffers={pg_info['shared_buffers']}), "
                f"psycopg {mach['psycopg']} |" if pg_info else "PostgreSQL not run |"))
    if any(k.startswith("oidc-") for k in order):
        L.append(f"| oidc-provider | {mach['oidc-provider']} on node {mach['node']}, NODE_ENV=production, "
                 f"`bench/peer/provider.mjs`: clustered = `bench/peer/cluster.mjs`, {cfg.workers} workers (node "
                 "cluster module) on the Redis adapter `bench/peer/redis_adapter.mjs` (ioredis "
                 f"{mach['ioredis']}, Redis {mach['redis']}); single = one process, in-memory adapter |")
    if any(k.startswith("dot-") for k in order):
        L.append(f"| django-oauth-toolkit | {mach['dot']} (`bench/peer/dot`, venv `bench/.venv-dot`), Granian "
                 f"WSGI, {cfg.workers} workers; SQLite (WAL, synchronous=NORMAL) and PostgreSQL (same server, "
                 "persistent connections) |")
    L.append(f"| load | {mach['wrk']}, `-t{cfg.threads} -c{cfg.connections} --timeout 10s`, "
             f"{fmt(cfg.warmup, 0)} s warm-up + {fmt(cfg.duration, 0)} s measured per endpoint and server, in "
             f"{cfg.rounds} rounds of {fmt(cfg.duration / cfg.rounds, 1)} s with the servers in turn, their order "
             "reversed every other round (so that the host's drift favours none); login flow: "
             f"`bench/loadgen.py`, {cfg.login_users} concurrent users; all on loopback, sharing the "
             f"{mach['nproc']} cores with the servers |")
    L.append("")
    L.append("## One column per server")
    L.append("")
    L.append("Same generator and settings for every server, same run. The second table is idbroker ÷ each peer: "
             "req/s ratio (higher is better) and p99 ratio (lower is better).")
    L.append("")
    L.extend(summary_table(cfg, servers, results))
    L.append("")
    L.append("## Throughput and latency")
    L.append("")
    L.append("req/s for the login row is completed logins per second (each the HTTP requests that server's own "
             "pages and redirects take; counted under the hashing ceiling below); its latencies "
             "are per login. Server CPU = CPU seconds the server's processes (for the clustered oidc-provider: "
             f"with Redis) used per second of the measured run ({mach['nproc']} = every "
             "core busy; the load generator uses the rest). Other work = the same for everything else on the "
             "machine (should be ~0: "
             f"an endpoint is measured again (at most {cfg.retries} more time(s)) when it exceeds {cfg.noise_limit} "
             "on any server, and the quietest attempt is kept). CPU probe = `cpu_probe_ms` right before and after "
             "the run, averaged: the CPU milliseconds a fixed piece of work took then (higher = a slower core; two "
             "servers measured at different probes were not measured on the same machine).")
    L.append("")
    L.append("| endpoint | server | req/s | p50 ms | p99 ms | errors | server CPU | other work | CPU probe ms |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for ep in cfg.endpoints:
        first = True
        for key in order:
            r = results.get(key, {}).get(ep)
            if r is None:
                continue
            name = ENDPOINT_TEXT[ep] if first else ""
            first = False
            L.append(f"| {name} | {servers[key].label} | {fmt(r.rps)} | {fmt(r.p50_ms, 2)} | {fmt(r.p99_ms, 2)} "
                     f"| {r.errors} | {r.server_cpu:.2f} | {r.other_cpu:.2f} | {r.probe_ms:.1f} |")
    L.append("")
    runtime = runtime_rows(cfg, servers, results)
    if len(runtime) > 2:
        L.append("## Where the tail comes from")
        L.append("")
        L.append("What stops every request of an idbroker worker at once, counted by the workers themselves over each "
                 "measured run (`/metrics`: `idbroker_gc_pause_seconds`, `idbroker_event_loop_lag_seconds`; "
                 "web/runtime.py): the cyclic collector's pauses by duration, and how late the event loop woke a "
                 "50 ms sleep (a ready request waits that long behind a pause, code holding the loop, or threads "
                 "holding the GIL). Each worker freezes its start-up heap out of the collector (`settle_heap`), so "
                 "a full collection walks only what requests made since. On SQLite, also what stops its writers: how "
                 "long each writing transaction waited for its turn on the writer lock "
                 "(`idbroker_write_turn_wait_seconds`), behind the writers of both workers; the WAL is checkpointed "
                 "in the background (`Database.checkpoint`), not by a writer holding the lock. And, on both stores, "
                 "what a refresh or a code exchange waits for once its group commit has started: how long each "
                 "one-time batch took from its start (SQLite: asking for the writer lock) to its commit "
                 "(`idbroker_one_time_batch_seconds`; the requests it carries wait that long).")
        L.append("")
        L.extend(runtime)
        L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | wanted | measured | |")
    L.append("| --- | --- | --- | --- |")
    for c in checks:
        L.append(f"| {c['target']} | {c['want']} | {c['got']} | **{verdict(c['ok'])}** |")
    L.append("")
    if ceiling:
        L.append("## Password hashing ceiling")
        L.append("")
        L.append(f"argon2id verify with idbroker's configured parameters (m={ceiling['memory_kib']} KiB, "
                 f"t={ceiling['time_cost']}, p={ceiling['parallelism']}), argon2-cffi {mach['argon2-cffi']}, "
                 f"{ceiling['processes']} processes (one per core) for {ceiling['seconds']:.1f} s with no server "
                 f"running: **{fmt(ceiling['per_s'])} hashes/s** "
                 f"({', '.join(fmt(p) for p in ceiling['per_process'])} per process; other work meanwhile: "
                 f"{ceiling['other_cpu']:.2f} cores).")
        for key in cfg.backends:
            r = results.get(key, {}).get("login")
            if r:
                L.append(f"- {servers[key].label}: {fmt(r.rps)} logins/s = {100 * r.rps / ceiling['per_s']:.0f} % "
                         f"of the ceiling ({r.extra['http_requests']} HTTP requests, "
                         f"{fmt(r.extra['http_rps'])} req/s)")
        for key in order:
            r = results.get(key, {}).get("login")
            if r and servers[key].kind == "oidc":
                L.append(f"- {servers[key].label}: {fmt(r.rps)} logins/s (its dev login form hashes no password)")
            elif r and servers[key].kind == "dot":
                L.append(f"- {servers[key].label}: {fmt(r.rps)} logins/s = {100 * r.rps / ceiling['per_s']:.0f} % "
                         "of the ceiling (Django's login form, argon2id with the same parameters)")
        gen = [(servers[k].label, results[k]["login"].extra["generator_cpu_pct"]) for k in order
               if "login" in results.get(k, {})]
        if gen:
            L.append("- login generator CPU: " + ", ".join(f"{lbl} {pct:.0f} % of one core" for lbl, pct in gen)
                     + "; it drives the peer's flow faster than any idbroker's, so it is not what limits idbroker.")
        L.append("")
    federated = federated_lines(cfg, servers, results)
    if federated:
        L.append("## Federated sign-in")
        L.append("")
        L.append("idbroker alone, in the same run: the login generator's users sign in through an upstream OpenID "
                 "provider, panva's oidc-provider (`bench/peer/provider.mjs`, one process, in-memory, its dev login "
                 f"form), which idbroker knows as `{UPSTREAM_ID}` (`idbroker idp add --kind oidc`: discovery, PKCE, "
                 "the ID token checked against the upstream's JWKS). Each flow, in a new browser: idbroker's "
                 f"authorize with `idp_hint={UPSTREAM_ID}` → the upstream's authorize and login form → idbroker's "
                 "callback (the code redeemed at the upstream's token endpoint, the account found by its link; the "
                 "first sign-in of each user created it) → the client's code → idbroker's token endpoint. CPU per "
                 "sign-in is each process's CPU over the measured run ÷ the sign-ins completed; the upstream's is its "
                 "own time, which idbroker's does not include.")
        L.append("")
        L.extend(federated)
        L.append("")
    if scale:
        import scaleout

        pg = results.get("postgres", {})
        L.extend(scaleout.model_lines(scale, {ep: r.rps for ep, r in pg.items() if ep not in FLOWS},
                                      pg["login"].rps if "login" in pg else None, int(mach["nproc"])))
    L.append("## Memory and start-up")
    L.append("")
    L.append("| server | cold start → first 200 | process | RSS before the login load (MB) | RSS after all load (MB) "
             "| PSS after all load (MB) | peak RSS (MB) | RSS after all load by mapping (MB) |")
    L.append("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for key in order:
        srv = servers[key]
        before_login = [eps for ep, eps in srv.rss.get("after", {}).items() if ep not in FLOWS]
        before = before_login[-1] if before_login else []
        rows = []
        if srv.rss.get("main"):
            rows.append(({"idbroker": "main (Granian supervisor)", "dot": "main (Granian supervisor)"}
                         .get(srv.kind, "node (cluster primary)" if key == "oidc-cluster" else "node"),
                         srv.rss["main"], None))
        rows += [(f"worker {i + 1}", w, before[i] if i < len(before) else None)
                 for i, w in enumerate(srv.rss.get("workers", []))]
        for i, (name, m, pre) in enumerate(rows):
            L.append(f"| {srv.label if i == 0 else ''} | {cold_start_text(srv) if i == 0 else ''} | {name} "
                     f"| {'' if pre is None else f'{pre:.0f}'} | {m['rss_mb']:.0f} | {m.get('pss_mb', 0):.0f} "
                     f"| {m['hwm_mb']:.0f} | {kinds_text(m.get('kinds', {}))} |")
    L.append("")
    L.append("Cold start: from spawning `idbroker serve` (database already migrated, signing keys present, as on a "
             "restart; bytecode precompiled, as a pip install leaves it) to the first 200 from `/healthz`, the median "
             f"of {cfg.cold_starts} starts (each in brackets); for the peer, from spawning node to the first 200 "
             "from discovery, once. MB = 10^6 bytes. RSS counts pages a worker shares with the Granian supervisor it "
             "was forked from; PSS splits those among the sharers. By mapping (`/proc/PID/smaps`): files = "
             "libraries and other mapped files (code pages touched, shared with every process that maps them); heap = "
             "malloc's main arena; anonymous = other private memory (Python's object arenas, malloc's other arenas and "
             "large blocks, V8's heap for node); thread stacks = 8 MiB thread stacks, as glibc makes them.")
    L.append("")
    L.append("## How the servers are made equivalent")
    L.append("")
    L.append("- Clients: `svc1` (confidential, client_secret_basic, client_credentials, scopes api:read api:write) and "
             "`web1` (confidential, client_secret_basic, code + PKCE S256, refresh tokens, first-party so no "
             "consent page; ID tokens ES256). Access tokens for `resource=" + RS_JWT + "` are ES256 JWTs on both.")
    L.append("- Refresh: rotation on both (`rotateRefreshToken: true` in the peer). `bench/lua/refresh.lua` keeps a "
             f"FIFO of live refresh tokens per wrk thread, seeded with {2 * cfg.connections} tokens from real "
             "logins, and feeds each returned token back in; the same script runs against both.")
    L.append("- Introspection: each server introspects a live access token of `svc1`, authenticated as `svc1`. "
             "idbroker's are JWTs (checked: signature, expiry, revocation); oidc-provider refuses to introspect "
             "JWT-format tokens, so the peer's token is its opaque one (`resource=" + RS_OPAQUE + "`).")
    L.append("- Userinfo: the access token of a `web1` login with scope `" + SCOPE_LOGIN + "`: a JWT at idbroker "
             "(signature, revocation and user looked up), opaque at the peer (its userinfo takes no resource-bound "
             "JWT).")
    L.append("- Login: the same generator walks both servers' own pages (idbroker's login form with argon2id; the "
             "peer's devInteractions form, which checks no password). The peer gets `offline_access`-like refresh "
             "tokens without prompt=consent through `issueRefreshToken`, as idbroker issues them to a first-party "
             "client.")
    L.append("- Stores: idbroker persists everything in SQLite or PostgreSQL; the single oidc-provider keeps "
             "everything in process memory (its default adapter), so it never pays for a write; the clustered one "
             "keeps everything in Redis (shared by its workers, no fsync), so any worker finds what another "
             "stored; django-oauth-toolkit persists in SQLite or PostgreSQL like idbroker.")
    L.append("- django-oauth-toolkit (`bench/peer/dot`, `manage.py bench_setup`): the same two clients "
             "(`web1` first-party: skip_authorization), refresh rotation (ROTATE_REFRESH_TOKEN, no grace period), "
             "PKCE required, OIDC on with an RS256 key (DOT signs ID tokens with RSA only; its JWKS holds that "
             "key), introspection at `/o/introspect/` (DOT does not list it in discovery; Basic-authenticated as "
             "`svc1`), userinfo releasing sub, email, email_verified. What it lacks: JWT access tokens (all its "
             "access tokens are opaque database rows, so its client_credentials row signs nothing) and resource "
             "indicators (RFC 8707: `resource` is ignored). Client secrets are stored as given "
             "(`hash_client_secret=False`; idbroker keeps a keyed HMAC, so neither runs a slow hash per token "
             "request); user passwords are argon2id with idbroker's parameters, so its login row is judged "
             "against the same hashing ceiling.")
    L.append("")
    return "\n".join(L) + "\n"


# -- main ----------------------------------------------------------------------------------------
def main() -> int:
    cfg = Config.from_env()
    started_at = dt.datetime.now(dt.UTC)
    t_start = time.perf_counter()
    if "postgres" in cfg.backends and not cfg.pg_admin_url:
        raise SystemExit("bench: BENCH_PG_ADMIN_URL is not set (run ./bench/run, or BENCH_BACKENDS=sqlite)")
    mach = machine()
    log(f"machine: {mach['nproc']} cores, {mach['cpu']}, {mach['memory']}; load average {mach['loadavg']}")
    tmp = Path(tempfile.mkdtemp(prefix="idbroker-bench."))
    if os.environ.get("BENCH_SRC"):
        cfg.src = Path(os.environ["BENCH_SRC"]).resolve()
        mach["idbroker"] = f"{pkg_version('idbroker')} from {cfg.src} (BENCH_SRC, working tree not used)"
        log(f"benching the idbroker package in {cfg.src}")
    elif cfg.ref:
        commit = cmd_out("git", "-C", str(ROOT), "rev-parse", "--short", cfg.ref)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", cfg.ref, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        cfg.src = tmp / "src"
        mach["idbroker"] = f"{pkg_version('idbroker')} @ {commit} (BENCH_REF={cfg.ref}, working tree not used)"
        log(f"benching src/ of {cfg.ref} ({commit}) from {cfg.src}")
    servers: dict[str, Server] = {}
    pg_name = pg_info = None
    extra_dbs: list[str] = []  # the django-oauth-toolkit peer's database
    results: dict[str, dict[str, Result]] = {}
    results_grown: dict[str, dict[str, Result]] = {}  # --grown: the same runs on the filled store
    grown: dict[str, dict[str, Any]] = {}  # --grown: per backend, fill time and query plans
    ceiling = None
    other_cpu: list[float] = []

    def cleanup(*_: Any) -> None:
        for srv in servers.values():
            srv.stop()
        for name in [pg_name, *extra_dbs]:
            if not name or not cfg.pg_admin_url:
                continue
            try:
                pg_drop(cfg.pg_admin_url, name)
                log(f"dropped database {name}")
            except Exception as exc:  # noqa: BLE001
                log(f"could not drop database {name}: {exc}")
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        log("compiling bytecode (venv, src/) into bench/.pycache")
        compile_bytecode(cfg)
        if cfg.wait_idle > 0:
            share = wait_idle(cfg.wait_idle)
            log(f"machine {100 * share:.0f} % busy with other work at the start")
            mach["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        if "login" in cfg.endpoints and not cfg.grown:
            ceiling = hashing_ceiling(cfg)
            log(f"argon2id ceiling: {ceiling['per_s']:.1f} hashes/s")
        for key in cfg.backends:
            url = None
            if key == "postgres":
                pg_name, url, pg_info = pg_create(cfg.pg_admin_url)
                log(f"created database {pg_name} (PostgreSQL {pg_info['version']})")
            servers[key] = start_idbroker(key, cfg, tmp, url)
        for key in [] if cfg.grown else cfg.peers:
            if key.startswith("oidc-"):
                servers[key] = start_peer(key, cfg, tmp)
            elif key == "dot-postgres":
                name, url, _ = pg_create(cfg.pg_admin_url)
                extra_dbs.append(name)
                servers[key] = start_dot(key, cfg, tmp, url)
            else:
                servers[key] = start_dot(key, cfg, tmp, None)
        order = [k for k in [*cfg.backends, *cfg.peers] if k in servers]
        for key in order:
            prepare(servers[key])
        measure_all(servers, order, cfg, tmp, results, other_cpu)
        if cfg.grown:
            for key in cfg.backends:
                srv = servers[key]
                url = srv.env.get("IDBROKER_DATABASE_URL") or f"sqlite:///{srv.workdir / 'data' / 'idbroker.db'}"
                grown[key] = fill_and_explain(url, cfg)
            measure_all(servers, order, cfg, tmp, results_grown, other_cpu)
        for key in order:
            srv = servers[key]
            assert srv.proc is not None
            rss, hwm = mem_mb(srv.proc.pid)
            srv.rss["main"] = {"rss_mb": rss, "hwm_mb": hwm, "pss_mb": pss_mb(srv.proc.pid),
                               "kinds": rss_by_kind(srv.proc.pid)}
            if key != "oidc-single":
                srv.rss["workers"] = [dict(zip(("rss_mb", "hwm_mb"), mem_mb(p), strict=True), pss_mb=pss_mb(p),
                                           kinds=rss_by_kind(p)) for p in proc_children(srv.proc.pid)]
                log(f"{srv.label}: worker RSS after load "
                    + ", ".join(f"{w['rss_mb']:.0f} MB ({kinds_text(w['kinds'])})" for w in srv.rss["workers"]))
    finally:
        cleanup()
    scale = None
    if not cfg.grown and "postgres" in results and cfg.pg_admin_url:
        import scaleout

        log("scale-out model: statements per operation (in-process idbroker on PostgreSQL), then pgbench")
        scale = scaleout.measure(cfg.pg_admin_url)

    mach["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    probes = [r.probe_ms for runs in (*results.values(), *results_grown.values()) for r in runs.values() if r.probe_ms]
    if probes:
        mach["probe"] = (f"{min(probes):.1f} to {max(probes):.1f} ms (median {statistics.median(probes):.1f}) "
                         f"around the {len(probes)} measured runs")
    if other_cpu:
        mach["other_cpu"] = (f"{sum(other_cpu) / len(other_cpu):.2f} cores on average over the measured runs, "
                             f"{max(other_cpu):.2f} at most")
    if cfg.grown:
        checks = evaluate_grown(results, results_grown, servers, cfg)
        text = report_grown(cfg, mach, servers, results, results_grown, grown, checks, pg_info, started_at,
                            time.perf_counter() - t_start)
    else:
        checks = evaluate(results, servers, ceiling, cfg)
        text = report(cfg, mach, ceiling, servers, results, checks, pg_info, started_at,
                      time.perf_counter() - t_start, scale)
    if cfg.output == "-":
        print(text)
    else:
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.output).write_text(text)
        log(f"wrote {cfg.output}")
    print()
    print("\n".join(grown_table(cfg, servers, results, results_grown) if cfg.grown
                    else summary_table(cfg, servers, results)))
    print()
    for c in checks:
        print(f"{verdict(c['ok'])}  {c['target']}: {c['got']} (want {c['want']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
