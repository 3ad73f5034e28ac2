"""Throughput and memory of `idbroker users import` and `users export` (accounts/transfer.py).

    .venv/bin/python bench/import_export.py [--users 100000 1000000] [--backends sqlite postgres]

For each backend and size: writes a jsonl file of N users (bcrypt hashes kept as they are, the
fast path), runs `idbroker users import FILE` on an empty store, a second time (every line
skipped), then `idbroker users export FILE`, each as its own process, and prints users/s (net of
the process's start-up, measured with `idbroker db current`) and the process's peak RSS
(ru_maxrss from wait4), so "memory flat whatever the file size" shows as the same peak for 100k
and 1M. PostgreSQL: BENCH_PG_ADMIN_URL, a superuser URL such as
postgresql://postgres@127.0.0.1:5432/postgres; a database is created for the run and dropped.
Targets (issue 11): import >= 20,000 users/s on SQLite, >= 10,000/s on PostgreSQL, export >= 50,000/s.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402

IDBROKER = Path(sys.executable).with_name("idbroker")
BCRYPT = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
LINE = ('{"email":"user%d@example.com","email_verified":true,"given_name":"User","family_name":"%d",'
        '"groups":["staff"],"custom_attributes":{"employee":"%d"},"created_at":"2020-01-01T00:00:00Z",'
        '"password_hash":"' + BCRYPT + '"}\n')
TARGETS = {("import", "sqlite"): 20_000, ("import", "postgres"): 10_000, ("export", "sqlite"): 50_000,
           ("export", "postgres"): 50_000}


def write_file(path: Path, n: int) -> None:
    with path.open("w") as f:
        for start in range(0, n, 10_000):
            f.write("".join(LINE % (i, i, i) for i in range(start, min(n, start + 10_000))))


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak RSS in MiB) of one idbroker process."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(IDBROKER), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"idbroker {' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss // 1024


def run(backend: str, n: int, work: Path, admin_url: str | None) -> list[tuple[str, float, int]]:
    env = {**os.environ, "IDBROKER_DATA_DIR": str(work / f"data-{backend}-{n}"),
           "IDBROKER_SECRET_KEY": base64.urlsafe_b64encode(b"b" * 32).rstrip(b"=").decode()}
    pg_name = None
    if backend == "postgres":
        if not admin_url:
            raise SystemExit("BENCH_PG_ADMIN_URL is not set")
        pg_name, url, _ = bench.pg_create(admin_url)
        env["IDBROKER_DATABASE_URL"] = url
    else:
        env["IDBROKER_DATABASE_URL"] = f"sqlite:///{work}/bench-{n}.db"
    source, out = work / f"users-{n}.jsonl", work / f"export-{backend}-{n}.jsonl"
    if not source.exists():
        write_file(source, n)
    try:
        subprocess.run([str(IDBROKER), "db", "upgrade"], env=env, check=True, capture_output=True)
        startup, _ = timed(["db", "current"], env)  # the process's own start (imports, settings, store)
        results = []
        for label, args in (("import", ["users", "import", str(source)]),
                            ("re-import (all skipped)", ["users", "import", str(source)]),
                            ("export", ["users", "export", str(out)])):
            seconds, rss = timed(args, env)
            results.append((label, n / max(seconds - startup, 1e-3), rss))
        return results
    finally:
        if pg_name and admin_url:
            bench.pg_drop(admin_url, pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    options = parser.parse_args()
    admin_url = os.environ.get("BENCH_PG_ADMIN_URL")
    print(f"{'backend':<9} {'users':>9}  {'step':<24} {'users/s':>9} {'peak RSS':>9}  target")
    with tempfile.TemporaryDirectory(prefix="idbroker-bench-import-") as tmp:
        for backend in options.backends:
            for n in options.users:
                for label, rate, rss in run(backend, n, Path(tmp), admin_url):
                    target = TARGETS.get((label, backend))
                    verdict = "" if target is None else f"{'PASS' if rate >= target else 'MISS'} (>= {target:,})"
                    print(f"{backend:<9} {n:>9,}  {label:<24} {rate:>9,.0f} {rss:>6} MiB  {verdict}", flush=True)


if __name__ == "__main__":
    main()
