"""The worker's Python runtime under load: the cyclic garbage collector's pauses, and how late the
event loop runs its callbacks. Both stop every request a worker has in progress at once, which is
where a tail latency far above the median comes from.

`start_up` turns the collector off while a process starts and `settle_heap` turns it on again, once
a worker has built its application (asgi.py; `freeze_heap` in the supervisor, before it forks the
workers): everything alive by then - the modules, the application, its registries and caches - is
moved out of the collector's view (`gc.freeze`), so that a full collection walks only what
requests created since, not the whole process. Measured with ./bench/run on client_credentials:
the longest full collection went from ~70 ms to ~6 ms and the p99 from 53 ms to 14 ms at a
higher throughput.

`RuntimeWatch` measures what is left, for ``/metrics`` (web/metrics.py):
* ``idbroker_gc_pause_seconds{generation}`` - each collection's duration. The collector's callback
  only appends to a list (it runs wherever an allocation triggers it, possibly inside the metrics
  library's own lock); the watch's task moves the pauses into the histogram.
* ``idbroker_event_loop_lag_seconds`` - how much later than asked a 50 ms sleep wakes up: the time
  a ready request waited behind a collection, code that held the loop, or the GIL held by threads.
* ``idbroker_write_turn_wait_seconds`` (SQLite) - how long each writing transaction waited for its
  turn on the writer lock (store/db.py), behind the writers of this and the other workers.
* ``idbroker_one_time_batch_seconds{kind}`` - how long each group-committed batch of refresh-token
  rotations or code redemptions took, from its start (SQLite: asking for the writer lock) to its commit
  (oauth2/one_time_writer.py): every token request of the batch waits that long.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

LAG_PROBE_SECONDS = 0.05


def start_up() -> None:
    """The collector stays off while a process starts (`settle_heap` turns it on). Start-up makes
    objects that live as long as the process - modules, the application - and each collection the
    allocations set off would walk all of them again for nothing: ~200 young and one full collection
    while the application is imported, ~10 % of the CPU of the import."""
    gc.disable()


def settle_heap() -> None:
    """Collect what start-up left as garbage, then keep every surviving object out of later
    collections (they live as long as the worker), and let the collector run from then on."""
    gc.collect()
    freeze_heap()


def freeze_heap() -> None:
    """`settle_heap` without the collection, for the supervisor right before it forks the workers
    (Python's own advice for a forking server): its start-up garbage is a few hundred small objects
    (571 counted: tuples, lists, argparse's help, compiled-statement leftovers; no file, socket or
    connection), kept for good, while a collection of its whole heap (~150,000 objects) took
    60-100 ms of the cold start. A worker's `settle_heap` walks only what the worker made."""
    gc.freeze()
    gc.enable()


class RuntimeWatch:
    """Collector pauses and event-loop lag, handed to `observe_pause(generation, seconds)` and
    `observe_lag(seconds)` from the event loop's own task (`run`), which also calls `hand_over()`:
    it moves what other threads measured meanwhile (the writers' waits, the one-time batches)."""

    def __init__(self, observe_pause: Callable[[int, float], None], observe_lag: Callable[[float], None],
                 hand_over: Callable[[], None] | None = None):
        self.observe_pause = observe_pause
        self.observe_lag = observe_lag
        self.hand_over = hand_over
        self._pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def _collector(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self._pauses.append((info["generation"], time.perf_counter() - self._started))
            self._started = 0.0

    def drain(self) -> None:
        pauses, self._pauses = self._pauses, []
        for generation, seconds in pauses:
            self.observe_pause(generation, seconds)
        if self.hand_over is not None:
            self.hand_over()

    async def run(self) -> None:
        """Until cancelled: probe the loop's lag and hand over the collector's pauses."""
        gc.callbacks.append(self._collector)
        try:
            loop = asyncio.get_running_loop()
            while True:
                asked = loop.time() + LAG_PROBE_SECONDS
                await asyncio.sleep(LAG_PROBE_SECONDS)
                self.observe_lag(max(0.0, loop.time() - asked))
                self.drain()
        finally:
            gc.callbacks.remove(self._collector)
