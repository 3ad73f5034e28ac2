"""web/runtime.py: start-up objects leave the collector's view; collector pauses and event-loop lag
are measured where they happen."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from support import run_coroutine

from idbroker.web import runtime


def test_settle_heap_freezes_what_is_alive_and_collects_garbage_first():
    class Node:
        pass

    gc.unfreeze()
    try:
        cycle = Node()
        cycle.me = cycle  # garbage only the cyclic collector can free
        del cycle
        before = gc.get_count()[0]
        runtime.settle_heap()
        assert gc.get_freeze_count() > 1000
        assert not [o for o in gc.get_objects() if isinstance(o, Node)]  # collected, not frozen
        assert gc.get_count()[0] <= before
    finally:
        gc.unfreeze()


def test_the_collector_is_off_during_start_up_and_on_once_the_heap_is_settled():
    gc.unfreeze()
    try:
        runtime.start_up()
        assert not gc.isenabled()
        runtime.settle_heap()
        assert gc.isenabled() and gc.get_freeze_count() > 1000
    finally:
        gc.enable()
        gc.unfreeze()


def test_a_start_that_stops_early_leaves_the_collector_on():
    """`idbroker serve` run in a process that goes on (typer's test runner)."""
    from idbroker.server import main

    with pytest.raises(SystemExit, match="--workers must be at least 1"):
        main(["--workers", "0"])
    assert gc.isenabled()


def test_a_worker_collects_once_its_application_is_built(tmp_path):
    """Granian forks the workers from the supervisor, which started with the collector off: each
    worker's `create` ends with it on, or the worker's heap would grow without bound."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env["IDBROKER_DATA_DIR"] = str(tmp_path)
    script = ("import gc; from idbroker.web.runtime import start_up; start_up(); import idbroker.asgi; "
              "idbroker.asgi.create(); print(gc.isenabled())")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_watch_reports_collector_pauses_and_a_blocked_loop():
    pauses: list[tuple[int, float]] = []
    lags: list[float] = []
    watch = runtime.RuntimeWatch(lambda generation, seconds: pauses.append((generation, seconds)), lags.append)

    async def scenario() -> None:
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(runtime.LAG_PROBE_SECONDS * 2)
        gc.collect()  # a full collection while the watch listens
        time.sleep(0.2)  # code that holds the loop
        await asyncio.sleep(runtime.LAG_PROBE_SECONDS * 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run_coroutine(scenario())
    assert any(generation == 2 and seconds > 0 for generation, seconds in pauses)
    assert max(lags) >= 0.15 and min(lags) >= 0
    assert watch._collector not in gc.callbacks  # removed when the worker stops


def test_a_pause_that_started_before_the_watch_is_not_counted():
    pauses: list[tuple[int, float]] = []
    watch = runtime.RuntimeWatch(lambda generation, seconds: pauses.append((generation, seconds)), lambda _: None)
    watch._collector("stop", {"generation": 2})
    watch.drain()
    assert pauses == []


def test_freeze_heap_freezes_without_collecting():
    class Node:
        pass

    gc.unfreeze()
    try:
        gc.disable()
        cycle = Node()
        cycle.me = cycle
        del cycle
        runtime.freeze_heap()
        assert gc.isenabled() and gc.get_freeze_count() > 1000
        assert [o for o in gc.get_objects(generation=None) if isinstance(o, Node)] == []  # out of view...
        gc.unfreeze()
        assert len([o for o in gc.get_objects() if isinstance(o, Node)]) == 1  # ...but not collected
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


SUPERVISOR_GARBAGE = """
import collections, gc, io, json, socket, sqlite3, sys
import granian
def serve(self):
    gc.unfreeze()  # what freeze_heap kept, garbage included
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
    def is_open(o):
        if isinstance(o, socket.socket):
            return o.fileno() != -1
        if isinstance(o, io.IOBase):
            return not o.closed
        if isinstance(o, sqlite3.Connection):
            try:
                o.total_changes
            except sqlite3.ProgrammingError:  # closed
                return False
            return True
        if type(o).__module__.startswith("psycopg") and type(o).__name__ == "Connection":
            return not o.closed
        if type(o).__module__.startswith("sqlalchemy.pool") and type(o).__name__ == "QueuePool":
            return o.checkedin() + o.checkedout() > 0
        return False
    holders = [type(o).__name__ for o in gc.garbage if is_open(o)]
    print(json.dumps({"count": len(gc.garbage), "holders": holders, "kinds": kinds.most_common(5)}))
    sys.exit(0)
granian.Granian.serve = serve
sys.argv = ["idbroker", "serve", "--port", sys.argv[1]]
from idbroker.cli import main
main()
"""


def test_the_garbage_the_supervisor_keeps_is_small_and_holds_nothing_open(tmp_path):
    """The supervisor freezes its heap without collecting it (`freeze_heap`): what start-up left as
    garbage stays, and every worker inherits it. It must stay small and hold nothing open - no file,
    socket, database connection or pool with connections, which the forked workers would share."""
    import json
    import os
    import subprocess
    import sys

    from support import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env["IDBROKER_DATA_DIR"] = str(tmp_path)
    counts = []
    for _start in ("first", "again"):  # a first start migrates; a restart is the common case
        done = subprocess.run([sys.executable, "-c", SUPERVISOR_GARBAGE, str(free_port())], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout.strip().splitlines()[-1])
        assert found["holders"] == [], found
        counts.append(found["count"])
    assert max(counts) < 2_000, counts  # a first start collects what migrating left
