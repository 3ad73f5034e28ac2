"""Where idbroker's time goes on one endpoint under the bench's load: py-spy on every worker.

    .venv/bin/pip install py-spy        # profiling only; not part of requirements.lock
    .venv/bin/python bench/profile.py ENDPOINT [--backend sqlite|postgres] [--duration 10] [--out DIR]

ENDPOINT is one of bench.py's (discovery, jwks, client_credentials, introspection, userinfo, refresh,
login). Starts idbroker alone (same settings as ./bench/run: Granian, workers = cores, BENCH_REF
honoured), runs the same wrk / loadgen load, samples the workers with py-spy (CPU only, idle threads
left out), and prints the top functions by own time and by inclusive time, and own time by package.
The raw collapsed stacks (flamegraph input) stay in --out. PostgreSQL: BENCH_PG_ADMIN_URL or the local
trust-auth server on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402

IDLE_LEAVES = ("Condition.wait", "EpollSelector.select", "Event.wait", "Queue.get", "select (selectors.py",
               "_worker (concurrent", "Thread._wait_for_tstate_lock")
FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def is_idbroker(path: str) -> bool:
    return (path.startswith("idbroker/") or "/idbroker/" in path) and "cli/main.py" not in path


def package_of(path: str) -> str:
    if is_idbroker(path):
        return "idbroker." + path.split("idbroker/", 1)[1].split("/")[0].removesuffix(".py")
    m = re.search(r"site-packages/([^/]+)", path)
    if m:
        return m.group(1).removesuffix(".py")
    m = re.search(r"python3\.\d+/([^/]+)", path)
    if m:
        return "stdlib:" + m.group(1).removesuffix(".py")
    return path or "?"


def summarize(raw_files: list[Path], top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    pkg: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for f in raw_files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = []
            for fr in stack.split(";"):
                m = FRAME_RE.match(fr)
                func, file = (m.group("func"), m.group("file")) if m else (fr, "")
                if func.startswith("process ") or func.startswith("thread "):
                    continue
                frames.append((func, file))
            if not frames:
                continue
            func, file = frames[-1]
            if any(f"{func} ({file}".startswith(x) or func.startswith(x) for x in IDLE_LEAVES):
                idle += n
                continue
            own[f"{func} ({short(file)})"] += n
            pkg[package_of(file)] += n
            for key in {f"{fn} ({short(fl)})" for fn, fl in frames if is_idbroker(fl)}:
                incl[key] += n
    busy = total - idle
    if not busy:
        return "no samples"
    out = [f"{total} samples, {idle} of them idle threads (left out); % below are of the {busy} busy ones"]
    total = busy
    out.append("\nown time by package:")
    out += [f"  {100 * n / total:5.1f} %  {k}" for k, n in pkg.most_common(15)]
    out.append("\ntop functions, own time:")
    out += [f"  {100 * n / total:5.1f} %  {k}" for k, n in own.most_common(top)]
    out.append("\nidbroker's functions, inclusive time:")
    out += [f"  {100 * n / total:5.1f} %  {k}" for k, n in incl.most_common(top)]
    return "\n".join(out)


def short(path: str) -> str:
    if is_idbroker(path):
        return "idbroker/" + path.split("idbroker/", 1)[1]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    return re.sub(r".*/python3\.\d+/", "", path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("endpoint", choices=bench.ENDPOINTS)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--out", default=None, help="directory for the raw py-spy output")
    ap.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (CPU in "
                    "Python; without it, threads waiting in C calls - SQLite locks, the GIL itself - count too)")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy") or str(bench.VENV_BIN / "py-spy")
    if not Path(pyspy).exists():
        raise SystemExit("profile: py-spy not found; .venv/bin/pip install py-spy (it is not in requirements.lock, "
                         "so scripts/bootstrap-python removes it whenever the lock changes)")

    os.environ.setdefault("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    os.environ["BENCH_BACKENDS"] = args.backend
    cfg = bench.Config.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="idbroker-profile."))
    out = Path(args.out or tempfile.mkdtemp(prefix="idbroker-pyspy."))
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get("BENCH_SRC"):
        cfg.src = Path(os.environ["BENCH_SRC"]).resolve()
    elif cfg.ref:
        archive = subprocess.run(["git", "-C", str(bench.ROOT), "archive", cfg.ref, "src"], capture_output=True,
                                 check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        cfg.src = tmp / "src"
    pg_name = None
    srv = None
    try:
        url = None
        if args.backend == "postgres":
            pg_name, url, _ = bench.pg_create(cfg.pg_admin_url)
        srv = bench.start_idbroker(args.backend, cfg, tmp, url)
        bench.prepare(srv)
        bench.run_endpoint(srv, args.endpoint, cfg, min(cfg.warmup or 2, 3), tmp)  # warm-up
        result: dict = {}

        def load() -> None:
            result["r"] = bench.run_endpoint(srv, args.endpoint, cfg, args.duration + 3, tmp)

        t = threading.Thread(target=load)
        t.start()
        time.sleep(1.5)  # the load generator is up (tokens fetched) before sampling starts
        workers = bench.proc_children(srv.proc.pid)
        spies = [subprocess.Popen([pyspy, "record", "--pid", str(w), "--duration", str(int(args.duration)),
                                   "--rate", str(args.rate), "--format", "raw", "--output", str(out / f"{w}.txt"),
                                   *(["--gil"] if args.gil else [])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for w in workers]
        for s in spies:
            _, err = s.communicate(timeout=args.duration + 60)
            if s.returncode != 0:
                print(f"py-spy failed: {err.decode()[-500:]}", file=sys.stderr)
        t.join()
        r = result["r"]
        print(f"{args.endpoint} on idbroker ({args.backend}): {r.rps:.1f} req/s, p50 {r.p50_ms:.1f} ms, "
              f"p99 {r.p99_ms:.1f} ms, errors {r.errors} (while sampled)")
        print(summarize(sorted(out.glob("*.txt"))))
        print(f"\nraw collapsed stacks: {out}")
    finally:
        if srv:
            srv.stop()
        if pg_name:
            bench.pg_drop(cfg.pg_admin_url, pg_name)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
