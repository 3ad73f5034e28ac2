"""A stop signal that reaches a worker while it starts waits until the worker serves (asgi.py).

Granian 2.8 hangs such a worker for good (its handler blocks before the worker serves, and the
supervisor waits for that worker forever): Ctrl-C a moment after `idbroker serve`, or systemd's
stop, which signals every process of the service. Checked in a fresh interpreter that plays the
worker's part: `create()`, a SIGTERM sent to itself, the application's start-up on an event loop the
way Granian runs it, then the loop running again as it does while serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

WORKER = """
import asyncio, os, signal, sys
from idbroker.server import prepare
from idbroker.settings import load_settings
prepare(load_settings(), "127.0.0.1", 8000, 2)
from idbroker.asgi import create
app = create()

def held():
    return signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])

print("held after create:", held(), flush=True)
os.kill(os.getpid(), signal.SIGTERM)
print("alive after the signal", flush=True)

async def start():
    messages, started = asyncio.Queue(), asyncio.Event()
    await messages.put({"type": "lifespan.startup"})
    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()
    asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, messages.get, send))
    await started.wait()

loop = asyncio.new_event_loop()
loop.run_until_complete(start())
print("held once started:", held(), flush=True)
loop.run_until_complete(asyncio.sleep(5))  # serving: the held SIGTERM ends the process here
print("still running after 5 s", flush=True)
"""


def test_a_stop_signal_during_start_up_waits_until_the_worker_serves(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env["IDBROKER_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.stdout.splitlines() == ["held after create: True", "alive after the signal",
                                        "held once started: True"], done.stderr
    assert done.returncode == -signal.SIGTERM, done.stderr
