"""The scale-out model of docs/benchmarks.md: what each operation asks of PostgreSQL, what PostgreSQL
itself does on this machine, and from those and the measured per-node rates, how many nodes and what
database serve a target load.

    .venv/bin/python bench/scaleout.py ADMIN_URL [--ops 40]     -> one JSON line (what bench.py reads)

1. Statements per operation: idbroker runs in this process (uvicorn, one worker, the same app as
   `idbroker serve`) on a fresh PostgreSQL database, with SQLAlchemy event listeners counting every
   statement and every transaction; each operation (login, refresh, introspection, userinfo,
   client_credentials) is driven `--ops` times over HTTP after a warm-up, and the counts are divided.
   Round trips = statements + transactions (psycopg sends BEGIN with the first statement of a
   transaction, COMMIT on its own): the figure a network latency multiplies.
2. PostgreSQL's own throughput: pgbench on a scratch database (scale 10) here, read-only (`-S`, one
   indexed SELECT per transaction) and TPC-B-like (five statements and a commit per transaction),
   16 clients, 2 threads, 10 s each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402

import bench  # noqa: E402

OPERATIONS = ("login", "refresh", "introspection", "userinfo", "client_credentials")


class Counter:
    """Statements and transactions on one engine, by operation."""

    def __init__(self, engine: Any):
        from sqlalchemy import event

        self.statements = 0
        self.transactions = 0
        self.writing = 0  # transactions that wrote (INSERT, UPDATE, DELETE): each a WAL flush at commit
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        with self._lock:
            self.statements += 1
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            conn.info["idbroker_wrote"] = True

    def _begin(self, conn: Any) -> None:
        conn.info["idbroker_wrote"] = False
        with self._lock:
            self.transactions += 1

    def _commit(self, conn: Any) -> None:
        if conn.info.pop("idbroker_wrote", False):
            with self._lock:
                self.writing += 1

    def snapshot(self) -> tuple[int, int, int]:
        with self._lock:
            return self.statements, self.transactions, self.writing


def _serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process idbroker did not start")
        time.sleep(0.05)
    return server, thread


def count_statements(admin_url: str, ops: int) -> dict[str, dict[str, float]]:
    name, url, _ = bench.pg_create(admin_url)
    data = Path(tempfile.mkdtemp(prefix="idbroker-scaleout-"))
    port = bench.free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env.update(IDBROKER_DATA_DIR=str(data), IDBROKER_ISSUER=origin, IDBROKER_DATABASE_URL=url,
               IDBROKER_LOG_LEVEL="WARNING")
    try:
        svc1 = bench.idbroker_cli(env, "clients", "add", "--client-id", "svc1", "--grant-type", "client_credentials",
                                  "--scope", "api:read")["client_secret"]
        web1 = bench.idbroker_cli(env, "clients", "add", "--client-id", "web1", "--redirect-uri", bench.REDIRECT_URI,
                                  "--first-party", "--grant-type", "authorization_code", "--grant-type",
                                  "refresh_token", "--id-token-alg", "ES256")["client_secret"]
        password = "bench-" + secrets.token_urlsafe(12)
        bench.add_users(env, bench.USER_EMAIL, password, 4)
        os.environ.update(env)
        from idbroker.app import create_app
        from idbroker.settings import load_settings

        app = create_app(load_settings())
        counter = Counter(app.state.provider.db.engine)
        server, thread = _serve(app, port)
        try:
            return asyncio.run(_drive(origin, counter, svc1, web1, password, ops))
        finally:
            server.should_exit = True
            thread.join(10)
            logging.getLogger("idbroker").setLevel(logging.ERROR)  # its change feed, once the database is gone
    finally:
        for key in env:
            if key.startswith("IDBROKER_"):
                os.environ.pop(key, None)
        shutil.rmtree(data, ignore_errors=True)
        bench.pg_drop(admin_url, name)


async def _drive(origin: str, counter: Counter, svc1: str, web1: str, password: str,
                 ops: int) -> dict[str, dict[str, float]]:
    meta = json.loads((await _request(origin, "GET", "/.well-known/openid-configuration"))[1])
    path = {key: urlsplit(meta[f"{key}_endpoint"]).path for key in ("token", "introspection", "userinfo")}
    args = loadgen.build_parser().parse_args([
        "login", "--issuer", origin, "--authorize", meta["authorization_endpoint"], "--token", meta["token_endpoint"],
        "--client-id", "web1", "--client-secret", web1, "--redirect-uri", bench.REDIRECT_URI, "--scope",
        bench.SCOPE_LOGIN, "--username", bench.USER_EMAIL, "--password", password, "--users", "1",
        "--duration", "600"])
    basic_svc1 = {"Authorization": bench.basic("svc1", svc1)}
    basic_web1 = {"Authorization": bench.basic("web1", web1)}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    tokens = await loadgen.run_tokens(argparse.Namespace(**{**vars(args), "count": 2}))
    refresh = tokens[0]["refresh_token"]
    access = tokens[1]["access_token"]
    cc_body = urlencode({"grant_type": "client_credentials", "resource": bench.RS_JWT}).encode()
    svc_token = json.loads((await _request(origin, "POST", path["token"], {**basic_svc1, **form}, cc_body))[1])

    async def one(op: str) -> None:
        nonlocal refresh
        if op == "login":
            got = await loadgen.run_login(argparse.Namespace(**{**vars(args), "max_flows": 1}))
            if got["flows"] != 1:
                raise RuntimeError(f"login failed: {got['error_samples']}")
        elif op == "refresh":
            body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh}).encode()
            status, answer = await _request(origin, "POST", path["token"], {**basic_web1, **form}, body)
            refresh = json.loads(answer)["refresh_token"]
        elif op == "introspection":
            body = urlencode({"token": svc_token["access_token"]}).encode()
            status, answer = await _request(origin, "POST", path["introspection"], {**basic_svc1, **form}, body)
        elif op == "userinfo":
            status, answer = await _request(origin, "GET", path["userinfo"], {"Authorization": f"Bearer {access}"})
        else:
            status, answer = await _request(origin, "POST", path["token"], {**basic_svc1, **form}, cc_body)
        if op != "login" and status != 200:
            raise RuntimeError(f"{op}: HTTP {status}: {answer[:200]!r}")

    out: dict[str, dict[str, float]] = {}
    for op in OPERATIONS:
        for _ in range(3):  # warm-up: per-worker caches filled, as on a server under load
            await one(op)
        before = counter.snapshot()
        for _ in range(ops):
            await one(op)
        s, t, w = (after - first for after, first in zip(counter.snapshot(), before, strict=True))
        out[op] = {"statements": s / ops, "transactions": t / ops, "writing": w / ops, "round_trips": (s + t) / ops}
    return out


async def _request(origin: str, method: str, target: str, headers: dict[str, str] | None = None,
                   body: bytes = b"") -> tuple[int, bytes]:
    return await asyncio.to_thread(bench.http, method, origin + target, headers=headers, body=body)


def pgbench(admin_url: str, seconds: int = 10) -> dict[str, float]:
    """pgbench's transactions per second on a scratch database: read-only and TPC-B-like."""
    import psycopg

    binary = shutil.which("pgbench") or str(next(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), "pgbench"))
    name = "idbroker_pgbench_" + secrets.token_hex(4)
    parts = urlsplit(admin_url)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    env = dict(os.environ, PGPASSWORD=parts.password or "")
    try:
        subprocess.run([binary, *conninfo, "-i", "-q", "-s", "10", name], env=env, check=True, capture_output=True,
                       timeout=600)
        out: dict[str, float] = {}
        for key, extra in (("read_only_tps", ["-S"]), ("tpcb_tps", [])):
            run = subprocess.run([binary, *conninfo, "-c", "16", "-j", "2", "-T", str(seconds), *extra, name],
                                 env=env, check=True, capture_output=True, text=True, timeout=seconds + 120)
            match = re.search(r"tps = ([\d.]+)", run.stdout)
            if match is None:
                raise RuntimeError(f"pgbench printed no tps: {run.stdout[-500:]}")
            out[key] = float(match.group(1))
        return out
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(admin_url: str, ops: int = 40) -> dict[str, Any]:
    return {"per_operation": count_statements(admin_url, ops), "pgbench": pgbench(admin_url)}


def model_lines(scale: dict[str, Any], per_node: dict[str, float], login_per_node: float | None,
                cores: int) -> list[str]:
    """The scale-out section of docs/benchmarks.md. `per_node`: req/s of one idbroker node (this
    machine, `cores` cores, PostgreSQL on the same machine) by operation, from the same run."""
    ops, pgb = scale["per_operation"], scale["pgbench"]
    L = ["## Scale-out model", "",
         "From this run: the per-node rates of idbroker (PostgreSQL) above (one node = this machine's "
         f"{cores} cores, the database beside it), what each operation asks of PostgreSQL (counted by "
         "`bench/scaleout.py`: SQLAlchemy's statement and transaction events around each operation, driven over "
         "HTTP after a warm-up), and PostgreSQL's own throughput here (pgbench, scale 10, 16 clients, 10 s: "
         f"**{pgb['read_only_tps']:,.0f}** read-only transactions/s (one indexed SELECT each) and "
         f"**{pgb['tpcb_tps']:,.0f}** TPC-B-like transactions/s (five statements, three of them writes, and a "
         "durable commit each)).", "",
         "| operation | statements | transactions | of them writing | round trips | one node (req/s) |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for op, c in ops.items():
        rate = login_per_node if op == "login" else per_node.get(op)
        L.append(f"| {op} | {c['statements']:.1f} | {c['transactions']:.1f} | {c['writing']:.1f} | "
                 f"{c['round_trips']:.1f} | {'' if rate is None else f'{rate:,.0f}'} |")
    L.append("")
    L.append("Round trips = statements + transactions (BEGIN travels with the first statement, COMMIT alone): what "
             "a network between the nodes and the database multiplies (0.5 ms each adds "
             f"{0.5 * ops['login']['round_trips']:.0f} ms to a login, {0.5 * ops['refresh']['round_trips']:.1f} ms to "
             "a refresh; it costs no throughput, since a request waiting on the database holds no core). "
             "Introspection, userinfo and client_credentials ask nothing of the database once a worker's caches "
             "are warm (signing keys, clients, revocations and claims requests, kept current by the change feed: "
             "one LISTEN connection per worker).")
    L.append("")
    rows = []
    if login_per_node:
        login = ops["login"]
        nodes = math.ceil(1000 / login_per_node)
        writes, reads = 1000 * login["writing"], 1000 * (login["transactions"] - login["writing"])
        db_share = writes / pgb["tpcb_tps"] + reads / pgb["read_only_tps"]
        rows.append(f"- **1,000 password logins/s**: one node does {login_per_node:,.0f} logins/s (argon2id at the "
                    f"configured cost is most of its CPU), so **{nodes} nodes** of {cores} cores ({nodes * cores} "
                    "cores; fewer where the database has a machine of its own, as it shares this one). "
                    f"The database sees {1000 * login['statements']:,.0f} statements/s in "
                    f"{1000 * login['transactions']:,.0f} transactions/s, {writes:,.0f} of them writing: "
                    f"{db_share:.1f} × what this {cores}-core PostgreSQL does in pgbench's mix, so a database of "
                    f"~{max(cores, math.ceil(db_share * cores * 1.5 / 2) * 2)} cores with its WAL on a fast disk "
                    "(×1.5 headroom, assuming PostgreSQL scales about linearly to there, as it does for "
                    "short transactions). The limit is the hashing: more nodes, linearly; the database only "
                    "when writes per login grow.")
    checks = [op for op in ("introspection", "userinfo") if per_node.get(op)]
    if checks:
        rate = min(per_node[op] for op in checks)
        nodes = math.ceil(50_000 / rate)
        rows.append(f"- **50,000 token checks/s** (introspection or userinfo; the slower, {rate:,.0f}/s per node, "
                    f"counted): **{nodes} nodes** ({nodes * cores} cores), and nothing from the database beyond "
                    f"{nodes * cores} LISTEN connections and their heartbeats. The limit is CPU per node; then the "
                    "network in front (50,000 small HTTPS requests/s through the load balancer).")
    if per_node.get("refresh"):
        refresh = ops["refresh"]
        rows.append(f"- Refresh with rotation: {refresh['statements']:.0f} statements in "
                    f"{refresh['writing']:.0f} writing transaction when alone, and group commit shares one "
                    f"transaction among the refreshes waiting together. One node does {per_node['refresh']:,.0f}/s; "
                    f"the database here commits {pgb['tpcb_tps']:,.0f} TPC-B-like transactions/s, each heavier than "
                    "a refresh batch, so refreshes scale with nodes until the database's commit rate, and past it "
                    "with a larger database or larger batches.")
    L.extend(rows)
    L.append("")
    return L


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("admin_url",
                    help="a PostgreSQL superuser URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--ops", type=int, default=40, help="operations of each kind counted")
    args = ap.parse_args()
    print(json.dumps(measure(args.admin_url, args.ops)), flush=True)


if __name__ == "__main__":
    main()
