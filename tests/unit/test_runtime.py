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
