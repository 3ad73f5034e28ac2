"""Prometheus metrics (prometheus-client), and the middleware that counts every request.

Across Granian workers. ``idbroker serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a directory of its
own run under data_dir, emptied before the workers start (server.py `prepare_metrics_dir`); each worker
then keeps its values in files there, and a scrape, served by whichever worker, adds up the files of
all of them (`render`). A worker that died leaves its files: counters and histograms keep counting
what it did (they are totals), its live gauges (pool use) are dropped - each worker, when it starts,
marks the workers that are gone as dead (`mark_dead_workers`), since Granian replaces them without
telling anyone. Without the variable (tests, other servers) the metrics live in this process.

What is counted - the names are the documentation (README "Monitoring"):

* ``idbroker_http_requests_total{route,method,status}`` and ``idbroker_http_request_duration_seconds``
  by route template (``/idp/{id}/callback``, never the URL: bounded labels, no query strings);
* ``idbroker_audit_events_total{kind}`` - every audit event kind (audit.py calls `audit_event`), and
  from them ``idbroker_logins_total{method}``, ``idbroker_login_failures_total{method}``,
  ``idbroker_mfa_events_total{event}``, ``idbroker_account_locks_total``;
* ``idbroker_mfa_verifications_total{factor,outcome}`` (the second step, pages/second_step.py);
* ``idbroker_tokens_issued_total{grant}`` (the token endpoint);
* ``idbroker_upstream_requests_total{host,outcome}`` and ``idbroker_upstream_request_duration_seconds``
  (the httpx client of the upstream providers, web/upstream_http.py);
* ``idbroker_db_pool_checked_out`` - connections in use, summed over the live workers (`watch_pool`);
* ``idbroker_gc_pause_seconds{generation}`` and ``idbroker_event_loop_lag_seconds`` - what stops
  every request of a worker at once; ``idbroker_write_turn_wait_seconds`` - what stops its SQLite
  writers; ``idbroker_one_time_batch_seconds{kind}`` - what a refresh or a code exchange waits for
  its group commit (web/runtime.py, `runtime_watch`).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import request_log
from .runtime import RuntimeWatch

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter("idbroker_http_requests", "HTTP requests answered, by route template and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("idbroker_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["route", "method"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
AUDIT_EVENTS = Counter("idbroker_audit_events", "Security events recorded in the audit trail", ["kind"])
LOGINS = Counter("idbroker_logins", "Successful sign-ins, by method", ["method"])
LOGIN_FAILURES = Counter("idbroker_login_failures", "Failed sign-ins, by method", ["method"])
MFA_EVENTS = Counter("idbroker_mfa_events", "Second-factor events (enrolled, removed, recovery codes)", ["event"])
MFA_VERIFICATIONS = Counter("idbroker_mfa_verifications", "Second steps of sign-ins, by factor kind and outcome",
                            ["factor", "outcome"])
LOCKS = Counter("idbroker_account_locks", "Accounts whose sign-in was paused after failed attempts")
TOKENS_ISSUED = Counter("idbroker_tokens_issued", "Token responses issued by the token endpoint, by grant",
                        ["grant"])
UPSTREAM_REQUESTS = Counter("idbroker_upstream_requests", "HTTP requests to upstream identity providers",
                            ["host", "outcome"])
UPSTREAM_LATENCY = Histogram("idbroker_upstream_request_duration_seconds",
                             "Time for an upstream identity provider to answer", ["host"])
POOL_CHECKED_OUT = Gauge("idbroker_db_pool_checked_out", "Database connections in use",
                         multiprocess_mode="livesum")
GC_PAUSES = Histogram("idbroker_gc_pause_seconds", "Pauses of the cyclic garbage collector, by generation",
                      ["generation"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
LOOP_LAG = Histogram("idbroker_event_loop_lag_seconds", "How late the event loop ran a callback that was due",
                     buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
WRITE_TURN_WAIT = Histogram("idbroker_write_turn_wait_seconds",
                            "How long a SQLite writing transaction waited for its turn on the writer lock",
                            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
ONE_TIME_BATCH = Histogram("idbroker_one_time_batch_seconds",
                           "How long a group-committed batch of refresh-token rotations or code redemptions took, "
                           "from its start (SQLite: asking for the writer lock) to its commit", ["kind"],
                           buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))

_TOKENS_BY_GRANT: dict[str, Any] = {}  # grant type -> its counter (the token endpoint knows the grant types)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LOGIN_SUCCEEDED, _LOGIN_FAILED, _LOCKED = "login.succeeded", "login.failed", "login.locked"


# -- counting -------------------------------------------------------------------------------------
def audit_event(kind: str, detail: Mapping[str, Any]) -> None:
    """audit.py's hook: called for every recorded event (never raises)."""
    try:
        AUDIT_EVENTS.labels(kind=kind).inc()
        method = str(detail.get("method") or "password")[:32]
        if kind == _LOGIN_SUCCEEDED:
            LOGINS.labels(method=method).inc()
        elif kind == _LOGIN_FAILED:
            LOGIN_FAILURES.labels(method=method).inc()
        elif kind == _LOCKED:
            LOCKS.inc()
        elif kind.startswith("mfa."):
            MFA_EVENTS.labels(event=kind[4:]).inc()
    except Exception:  # noqa: BLE001 - counting must never break what is counted
        pass


def mfa_verified(factor: str, ok: bool) -> None:
    """The second step of a sign-in was tried with a factor of this kind (or a recovery code)."""
    MFA_VERIFICATIONS.labels(factor=factor[:32], outcome="ok" if ok else "failed").inc()


def token_issued(grant_type: str, client_id: str | None = None) -> None:
    """The token endpoint answered `client_id` with tokens (the client_id also goes to the log fields)."""
    counted = _TOKENS_BY_GRANT.get(grant_type)
    if counted is None:
        counted = _TOKENS_BY_GRANT[grant_type] = TOKENS_ISSUED.labels(grant=grant_type[:64])
    counted.inc()
    request_log.note(client_id=client_id)


def watch_pool(engine: Any) -> None:
    """``idbroker_db_pool_checked_out``: one up at each checkout from the engine's pool, one down at
    its checkin (SQLAlchemy fires checkin for invalidated connections too)."""
    from sqlalchemy import event

    pool = engine.pool
    if not event.contains(pool, "checkout", _checked_out):
        event.listen(pool, "checkout", _checked_out)
        event.listen(pool, "checkin", _checked_in)


def _checked_out(dbapi_connection: Any, record: Any, *_: Any) -> None:
    record.info["idbroker_counted"] = True
    POOL_CHECKED_OUT.inc()


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    # Only what was counted out: a connection checked out before the listener was added (the
    # PostgreSQL change-feed listener's) would otherwise take the gauge below zero.
    if record is not None and record.info.pop("idbroker_counted", False):
        POOL_CHECKED_OUT.dec()


def runtime_watch(write_waits: Callable[[], list[float]] | None = None,
                  batches: Callable[[], list[tuple[str, float]]] | None = None) -> RuntimeWatch:
    """The collector's pauses, the event loop's lag, on SQLite the writers' waits for their turn
    (`WriterLock.drain_waits`) and the one-time batches' durations (`GrantStore.drain_batches`), into
    GC_PAUSES, LOOP_LAG, WRITE_TURN_WAIT and ONE_TIME_BATCH."""
    def hand_over() -> None:
        for seconds in write_waits() if write_waits is not None else ():
            WRITE_TURN_WAIT.observe(seconds)
        for kind, seconds in batches() if batches is not None else ():
            ONE_TIME_BATCH.labels(kind=kind).observe(seconds)

    return RuntimeWatch(lambda generation, seconds: GC_PAUSES.labels(generation=str(generation)).observe(seconds),
                        LOOP_LAG.observe, hand_over)


# -- several processes ----------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def mark_dead_workers() -> None:
    """Drop the live gauges of worker processes that are gone (Granian replaced them)."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder or not os.path.isdir(folder):
        return
    pids = set()
    for name in os.listdir(folder):
        stem = name.rsplit(".", 1)[0]
        tail = stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    for pid in pids:
        if pid != os.getpid() and not _alive(pid):
            multiprocess.mark_process_dead(pid, folder)


def render() -> bytes:
    """The exposition: every worker's values when they share a directory, else this process's."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder and os.path.isdir(folder):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, folder)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# -- every request --------------------------------------------------------------------------------
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _request_series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one route, method and status, looked up once
    (labels() takes a lock and builds its key on every call). Bounded as the labels are."""
    key = (route, method, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = (HTTP_REQUESTS.labels(route=route, method=method, status=str(status)),
                                 HTTP_LATENCY.labels(route=route, method=method))
    return series


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class ObservedRequests:
    """ASGI middleware: the request id (in and out), the request's log fields, the access log line
    (when on), and the request counters and latency."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False):
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope.get("headers", []):
            if key.lower() == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = request_log.request_id_from(incoming)
        method = scope.get("method", "GET")
        method = method if method in _METHODS else "other"  # bounded labels
        token = request_log.begin(request_id, method)
        client = scope.get("client")
        request_log.note(client_ip=client[0] if client else None)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers + [(b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_of(scope)
            try:
                counted, timed = _request_series(route, method, status)
                counted.inc()
                timed.observe(time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - counting must never break the answer
                pass
            if self.access_log:
                request_log.access(route, method, status, started)
            request_log.end(token)
