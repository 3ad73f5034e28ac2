"""Fills an idbroker store quickly, for the benchmark's grown-store runs (./bench/run --grown).

    .venv/bin/python bench/fill_store.py DATABASE_URL [--users N] [--refresh N] [--audit M] [--scale F]
    .venv/bin/python bench/fill_store.py DATABASE_URL --explain-only

DATABASE_URL is idbroker's (sqlite:////path/idbroker.db or postgresql+psycopg://user@host:port/db) of a
store that `idbroker` has already migrated (the client `web1` must exist: every grant and refresh token
belongs to it). It adds, next to what is there:

  - N users (default 1,000,000): fill{n}@example.org, all with one argon2id hash computed once;
  - N live refresh tokens (default 1,000,000), each in a grant of its own, of a random filled user;
  - N/10 revoked access-token jtis (live until their expiry);
  - M audit events (default 5,000,000) spread over the last 90 days.

`--scale 0.01` multiplies every count (a quick run). PostgreSQL is filled with COPY and then ANALYZEd
(as autovacuum would); SQLite with executemany in transactions of 100,000 rows (no ANALYZE: nothing
runs it in production either). Columns that other migrations add are given their default or, when
NOT NULL without one, a neutral value, so the fixture keeps working as the schema grows.

Then it prints the query plans of the hot statements (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN
on SQLite): user by email, refresh token by hash, grant by id, refresh tokens of a grant, revoked jti
lookup, audit insert (rolled back). `--json` prints them as one JSON line instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import secrets
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

BATCH = 100_000
SCOPE = "openid email offline_access"
CLIENT = "web1"
AUDIT_KINDS = ["login.succeeded", "token.refreshed", "login.failed", "logout", "consent.granted"]


def log(msg: str) -> None:
    print(f"fill_store: {msg}", file=sys.stderr, flush=True)


# -- the store ------------------------------------------------------------------------------------
class Store:
    """A thin DB-API layer over sqlite3 and psycopg: column introspection, bulk insert, explain."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.kind = "sqlite"
            path = url.split(":///", 1)[1]
            self.conn: Any = sqlite3.connect(path, timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=OFF")  # a fixture: durability of the fill does not matter
        elif url.startswith("postgres"):
            import psycopg

            self.kind = "postgres"
            scheme, rest = url.split("://", 1)
            self.conn = psycopg.connect("postgresql://" + rest, autocommit=True)
        else:
            raise SystemExit(f"fill_store: cannot use {url!r} (sqlite:///... or postgresql+psycopg://...)")

    def columns(self, table: str) -> list[tuple[str, str, bool, bool]]:
        """(name, type, not_null, has_default) of every column."""
        if self.kind == "sqlite":
            rows = self.conn.execute(f"PRAGMA table_info({table})").fetchall()
            return [(r[1], r[2].upper(), bool(r[3]) and not r[5], r[4] is not None or bool(r[5])) for r in rows]
        rows = self.conn.execute(
            "SELECT column_name, data_type, is_nullable = 'NO', column_default IS NOT NULL OR is_identity = 'YES' "
            "FROM information_schema.columns WHERE table_name = %s AND table_schema = current_schema() "
            "ORDER BY ordinal_position", (table,)).fetchall()
        return [(r[0], r[1].upper(), r[2], r[3]) for r in rows]

    def scalar(self, sql: str) -> Any:
        return self.conn.execute(sql).fetchone()[0]

    def insert(self, table: str, given: dict[str, int], rows: Iterable[tuple], total: int) -> None:
        """Inserts rows whose values are for the columns `given` (name -> position), filling every other
        NOT NULL column that has no default with a neutral value."""
        extra = [(name, neutral(typ, name, self.kind)) for name, typ, not_null, has_default in self.columns(table)
                 if name not in given and not_null and not has_default]
        names = list(given) + [n for n, _ in extra]
        tail = tuple(v for _, v in extra)
        full = (tuple(r) + tail for r in rows)
        started, done = time.perf_counter(), 0
        if self.kind == "sqlite":
            sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            for chunk in chunks(full, BATCH):
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(sql, chunk)
                self.conn.execute("COMMIT")
                done += len(chunk)
                progress(table, done, total, started)
        else:
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                for row in full:
                    copy.write_row(row)
                    done += 1
                    if done % BATCH == 0:
                        progress(table, done, total, started)
        log(f"{table}: {total:,} rows in {time.perf_counter() - started:.1f} s")

    def analyze(self) -> None:
        if self.kind == "postgres":
            for table in ("users", "grants", "refresh_tokens", "revoked_tokens", "audit_events"):
                self.conn.execute(f"VACUUM ANALYZE {table}")

    def explain(self, sql_sqlite: str, sql_pg: str, params: tuple, rollback: bool = False) -> str:
        if self.kind == "sqlite":
            rows = self.conn.execute("EXPLAIN QUERY PLAN " + sql_sqlite, params).fetchall()
            if not rows and sql_sqlite.startswith("INSERT"):  # SQLite has no plan for a plain insert
                table = sql_sqlite.split()[2]
                indexes = [r[1] for r in self.conn.execute(f"PRAGMA index_list({table})").fetchall()]
                return f"(plain insert into {table}; b-trees updated: the table and {', '.join(indexes) or 'none'})"
            return "\n".join(r[-1] for r in rows)
        # EXPLAIN ANALYZE runs the statement: the audit insert's transaction is rolled back
        with self.conn.transaction(force_rollback=rollback):
            rows = self.conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql_pg, params).fetchall()
        return "\n".join(r[0] for r in rows)


def neutral(typ: str, name: str, kind: str) -> Any:
    if "BOOL" in typ:
        return False if kind == "postgres" else 0
    if "INT" in typ or "NUMERIC" in typ:
        return 0
    if "JSON" in typ:
        return "[]"
    if "TIME" in typ or "DATE" in typ:
        return now_value(kind)
    return ""


def chunks(rows: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def progress(table: str, done: int, total: int, started: float) -> None:
    if done % (BATCH * 10) == 0 or done == total:
        log(f"{table}: {done:,} / {total:,} ({done / max(time.perf_counter() - started, 1e-9):,.0f} rows/s)")


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def now_value(kind: str, delta: dt.timedelta = dt.timedelta(0)) -> Any:
    t = NOW + delta
    # SQLAlchemy's DateTime on SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, as idbroker writes it)
    return t if kind == "postgres" else t.strftime("%Y-%m-%d %H:%M:%S.000000")


# -- the fill -------------------------------------------------------------------------------------
def fill(store: Store, users: int, refresh: int, audit: int) -> None:
    from argon2 import PasswordHasher

    kind = store.kind
    if not store.scalar(f"SELECT count(*) FROM clients WHERE client_id = '{CLIENT}'"):
        raise SystemExit(f"fill_store: no client {CLIENT!r} in the store (register it first, as bench.py does)")
    pw_hash = PasswordHasher(memory_cost=19 * 1024, time_cost=2, parallelism=1).hash("fill-" + secrets.token_hex(8))
    tag = secrets.token_hex(3)  # lets the fixture be run twice on one store
    now = now_value(kind)
    true, false = (True, False) if kind == "postgres" else (1, 0)

    first_id = (store.scalar("SELECT coalesce(max(id), 0) FROM users") or 0) + 1
    store.insert("users", {"sub": 0, "email": 1, "email_verified": 2, "password_hash": 3, "groups": 4,
                           "disabled": 5, "phone_number_verified": 6, "created_at": 7, "updated_at": 8},
                 ((secrets.token_urlsafe(16), f"fill{tag}-{n}@example.org", true, pw_hash, "[]", false, false, now, now)
                  for n in range(users)), users)
    last_id = store.scalar("SELECT max(id) FROM users")
    if last_id - first_id + 1 < users:
        raise SystemExit("fill_store: users were not given consecutive ids; cannot pick owners for the grants")

    rnd = random.Random(14)
    grant_ids = [secrets.token_urlsafe(16) for _ in range(refresh)]
    expires = now_value(kind, dt.timedelta(days=30))
    store.insert("grants", {"id": 0, "client_id": 1, "user_id": 2, "scope": 3, "auth_time": 4, "amr": 5, "acr": 6,
                            "created_at": 7, "expires_at": 8},
                 ((g, CLIENT, rnd.randint(first_id, last_id), SCOPE, now, '["pwd"]', "urn:idbroker:acr:pwd", now,
                   expires) for g in grant_ids), refresh)
    store.insert("refresh_tokens", {"token_hash": 0, "grant_id": 1, "client_id": 2, "scope": 3, "created_at": 4,
                                    "expires_at": 5},
                 ((os.urandom(32).hex(), g, CLIENT, SCOPE, now, expires) for g in grant_ids), refresh)
    del grant_ids
    revoked = max(1, refresh // 10)
    store.insert("revoked_tokens", {"jti": 0, "expires_at": 1},
                 ((secrets.token_urlsafe(16), now_value(kind, dt.timedelta(hours=1))) for _ in range(revoked)), revoked)
    span = 90 * 86400  # oldest first, in id order, as a live server writes them
    detail = json.dumps({"method": "pwd"})

    def audit_rows() -> Iterator[tuple]:
        for n in range(audit):
            yield (rnd.randint(first_id, last_id), AUDIT_KINDS[n % len(AUDIT_KINDS)],
                   f"10.{n % 250}.{n % 199}.{n % 97}", "Mozilla/5.0 (fixture)", detail,
                   now_value(kind, dt.timedelta(seconds=(n - audit) * span // audit)))

    store.insert("audit_events", {"user_id": 0, "kind": 1, "ip": 2, "user_agent": 3, "detail": 4, "created_at": 5},
                 audit_rows(), audit)
    store.analyze()


# -- the query plans ------------------------------------------------------------------------------
def plans(store: Store) -> dict[str, str]:
    """The hot statements' plans, on real keys (the newest rows)."""
    q = store.conn.execute
    email = q("SELECT email FROM users ORDER BY id DESC LIMIT 1").fetchone()[0]
    token_hash, grant_id = q("SELECT token_hash, grant_id FROM refresh_tokens LIMIT 1").fetchone()
    jti = (q("SELECT jti FROM revoked_tokens LIMIT 1").fetchone() or ["none"])[0]
    user_id = q("SELECT max(id) FROM users").fetchone()[0]
    p = "?" if store.kind == "sqlite" else "%s"
    statements = {
        "user by email": ("SELECT * FROM users WHERE email = {p}", (email,)),
        "refresh token by hash": ("SELECT * FROM refresh_tokens WHERE token_hash = {p}", (token_hash,)),
        "grant by id": ("SELECT * FROM grants WHERE id = {p}", (grant_id,)),
        "refresh tokens of a grant (rotation, revocation)": ("SELECT * FROM refresh_tokens WHERE grant_id = {p}",
                                                             (grant_id,)),
        "revoked jti lookup": ("SELECT jti FROM revoked_tokens WHERE jti = {p}", (jti,)),
        "audit insert": ("INSERT INTO audit_events (user_id, kind, ip, user_agent, detail, created_at) "
                         "VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                         (user_id, "login.succeeded", "127.0.0.1", "plan", "{}", now_value(store.kind))),
    }
    out = {}
    for name, (sql, params) in statements.items():
        sql = sql.format(p=p)
        out[name] = store.explain(sql, sql, params, rollback=sql.startswith("INSERT"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("database_url")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--refresh", type=int, default=1_000_000)
    ap.add_argument("--audit", type=int, default=5_000_000)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every count (0.01 for a quick run)")
    ap.add_argument("--explain-only", action="store_true", help="print the query plans, add nothing")
    ap.add_argument("--json", action="store_true", help="print the plans as one JSON line")
    a = ap.parse_args(argv)
    store = Store(a.database_url)
    if not a.explain_only:
        n_users, n_refresh, n_audit = (max(1, round(x * a.scale)) for x in (a.users, a.refresh, a.audit))
        log(f"{store.kind}: adding {n_users:,} users, {n_refresh:,} refresh tokens (and grants), "
            f"{n_audit:,} audit events")
        started = time.perf_counter()
        fill(store, n_users, n_refresh, n_audit)
        log(f"filled in {time.perf_counter() - started:.1f} s")
    got = plans(store)
    if a.json:
        print(json.dumps(got))
    else:
        for name, plan in got.items():
            print(f"-- {name}\n{plan}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
