"""OpenTelemetry traces, optional: on when ``otel_endpoint`` names an OTLP/HTTP traces URL.

Off by default, and then free: app.py imports this module only when the endpoint is set, so no
``opentelemetry`` module is loaded (tests/protocol/test_tracing.py checks ``sys.modules``). On, and
the packages missing (the ``otel`` extra): settings.py refuses to start with one line.

What is traced (names and attributes are chosen here, never copied from the request):

* a SERVER span per request, named ``<METHOD> <route template>`` (``POST /oauth2/token``), with
  ``http.request.method``, ``http.route``, ``http.response.status_code``, ``client.address`` (after
  web/proxies.py found the real client) and ``idbroker.request_id``. Never the URL, its query string
  (codes and tokens ride in those of /oauth2/authorize, the callbacks, /verify-email/confirm) or a
  header;
* a CLIENT span per database statement, named ``db <FIRST KEYWORD>`` (``db SELECT``), with the
  dialect: never the statement's text or its parameters;
* a CLIENT span per outgoing httpx request (upstreams, STS, webhooks, SMS, breached-password API),
  named ``<METHOD> <host>``, with ``server.address`` and the status; ``traceparent`` is added to the
  request so the upstream continues the trace; never the path or the query;
* ``password hash`` / ``password verify`` around argon2id (accounts/passwords.py), and
  ``upstream start`` / ``upstream finish`` / ``upstream authenticate`` around the sign-in steps of
  each upstream kind (federation/kinds.py UPSTREAMS), with the kind.

Child spans are made only inside a traced request, so background work (the purge, the change feed
listener, the exporter itself) makes no stray root spans.

Incoming ``traceparent``: honoured only when the TCP peer is one of ``trusted_proxies`` - the rule
web/proxies.py applies to X-Forwarded-For. From anyone else it is ignored and a new trace starts:
a client could otherwise pick the trace id and force its requests to be sampled (a parent's
sampled flag wins over ``otel_sample_ratio``), filling the collector.

How the hooks are placed. The database spans are SQLAlchemy engine events. Password hashing, the
upstream kinds and httpx's two transports are wrapped while tracing runs and restored when it stops
(the technique of OpenTelemetry's own instrumentation packages), so that the domain code below this
layer stays free of any tracing import. One tracer provider per process, built in the app's lifespan
(so in each Granian worker, after the fork) with a batch span processor, flushed and shut down when
the lifespan ends. The global tracer provider and propagator are left alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Engine, event
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts.passwords import Passwords
from ..federation.kinds import UPSTREAMS
from . import request_log
from .metrics import route_of
from .proxies import address_in, networks

log = logging.getLogger("idbroker.tracing")
PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_SPANS = "idbroker.spans"  # Connection.info: the statement spans open on a connection

_tracer: trace.Tracer | None = None  # set while a Tracing runs in this process
_originals: list[tuple[Any, str, Any]] = []


def _child(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> trace.Span | None:
    """A span under the current one, or None outside a traced request."""
    if _tracer is None or not trace.get_current_span().is_recording():
        return None
    return _tracer.start_span(name, kind=kind, attributes={k: v for k, v in attributes.items() if v is not None})


def _failed(span: trace.Span, exc: BaseException) -> None:
    # The type only: an exception's message may quote what it was given.
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    span.set_attribute("error.type", type(exc).__name__)


# -- the server span ------------------------------------------------------------------------------
class TracedRequests:
    """ASGI middleware (inside ObservedRequests, so the request id is known): one SERVER span each."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: list[str]):
        self.app = app
        self.trusted = networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        parent = None
        peer = scope.get("idbroker.peer", scope.get("client"))  # the TCP peer (web/proxies.py)
        if peer and address_in(peer[0], self.trusted):
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                       if k.lower() in _TRACE_HEADERS}
            parent = PROPAGATOR.extract(carrier) if carrier else None
        method = scope.get("method", "GET")
        client = scope.get("client")
        span = tracer.start_span(method, context=parent, kind=SpanKind.SERVER, attributes={
            "http.request.method": method, "url.scheme": scope.get("scheme", "http"),
            "client.address": client[0] if client else "",
            "idbroker.request_id": request_log.current_request_id() or ""})
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            route = route_of(scope)
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)


# -- database statements --------------------------------------------------------------------------
def _first_keyword(statement: str) -> str:
    word = statement.lstrip(" \t\r\n(").split(None, 1)[0] if statement.strip() else ""
    return word.upper()[:16] if word.isalpha() else "OTHER"


def _statement_started(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
    keyword = _first_keyword(statement)
    span = _child(f"db {keyword}", SpanKind.CLIENT, **{"db.system.name": conn.dialect.name,
                                                       "db.operation.name": keyword})
    conn.info.setdefault(_SPANS, []).append(span)


def _statement_done(conn: Any, *_: Any) -> None:
    spans = conn.info.get(_SPANS)
    span = spans.pop() if spans else None
    if span is not None:
        span.end()


def _statement_failed(exception_context: Any) -> None:
    conn = exception_context.connection
    spans = conn.info.get(_SPANS) if conn is not None else None
    span = spans.pop() if spans else None
    if span is not None:
        _failed(span, exception_context.original_exception)
        span.end()


_DB_EVENTS = (("before_cursor_execute", _statement_started), ("after_cursor_execute", _statement_done),
              ("handle_error", _statement_failed))


# -- wrapped calls --------------------------------------------------------------------------------
def _wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = owner.__dict__[name]
    _originals.append((owner, name, original))
    setattr(owner, name, functools.wraps(original)(make(original)))


def _kind_of(args: tuple[Any, ...]) -> str | None:
    """The upstream kind of a wrapped method's `self` (None for other wrapped methods)."""
    if not args:
        return None
    cls = type(args[0])
    return next((kind for kind, c in UPSTREAMS.items() if c is cls), None)


def _spanned(name: str, **attributes: Any) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            span = _child(name, **attributes, **{"idbroker.upstream.kind": _kind_of(args)})
            if span is None:
                return original(*args, **kwargs)
            with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
                try:
                    return original(*args, **kwargs)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
        return call
    return make


def _spanned_async(name: str, **attributes: Any) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            span = _child(name, **attributes, **{"idbroker.upstream.kind": _kind_of(args)})
            if span is None:
                return await original(*args, **kwargs)
            with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
                try:
                    return await original(*args, **kwargs)
                except BaseException as exc:
                    _failed(span, exc)
                    raise
        return call
    return make


def _outgoing(request: httpx.Request) -> trace.Span | None:
    span = _child(f"{request.method} {request.url.host}", SpanKind.CLIENT, **{
        "http.request.method": request.method, "server.address": request.url.host,
        "server.port": request.url.port or (443 if request.url.scheme == "https" else 80)})
    if span is not None:
        headers: dict[str, str] = {}
        PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        request.headers.update(headers)
    return span


def _answered(span: trace.Span, response: httpx.Response) -> None:
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _sync_transport(original: Any) -> Any:
    def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
        span = _outgoing(request)
        if span is None:
            return original(self, request)
        try:
            response = original(self, request)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise
        _answered(span, response)
        return response
    return handle_request


def _async_transport(original: Any) -> Any:
    async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
        span = _outgoing(request)
        if span is None:
            return await original(self, request)
        try:
            response = await original(self, request)
        except BaseException as exc:
            _failed(span, exc)
            span.end()
            raise
        _answered(span, response)
        return response
    return handle_async_request


def _install_wrappers() -> None:
    _wrap(Passwords, "hash", _spanned("password hash", **{"idbroker.password.scheme": "argon2id"}))
    _wrap(Passwords, "verify", _spanned("password verify"))
    _wrap(httpx.HTTPTransport, "handle_request", _sync_transport)
    _wrap(httpx.AsyncHTTPTransport, "handle_async_request", _async_transport)
    done: set[tuple[type, str]] = set()
    for cls in UPSTREAMS.values():
        for step in ("start", "finish", "authenticate"):
            # where the method is defined (the oidc kind inherits the oauth2 kind's steps): wrapped once
            owner = next((c for c in cls.__mro__ if step in c.__dict__), None)
            if owner is None or (owner, step) in done:
                continue
            done.add((owner, step))
            wrap = _spanned if step == "authenticate" else _spanned_async
            _wrap(owner, step, wrap(f"upstream {step}"))


def _remove_wrappers() -> None:
    while _originals:
        owner, name, original = _originals.pop()
        setattr(owner, name, original)


# -- the process's tracer -------------------------------------------------------------------------
class Tracing:
    """Built by app.py when ``otel_endpoint`` is set; `start` and `stop` run in the app's lifespan."""

    def __init__(self, *, endpoint: str, service_name: str, sample_ratio: float, engine: Engine,
                 exporter: SpanExporter | None = None):
        self.endpoint, self.service_name, self.sample_ratio = endpoint, service_name, sample_ratio
        self.engine = engine
        self.exporter = exporter
        self.provider: TracerProvider | None = None

    def start(self) -> None:
        global _tracer
        if _tracer is not None:  # another app in this process traces already (tests): one at a time
            log.warning("tracing is already running in this process; this app's spans go to its tracer")
            return
        self.provider = TracerProvider(resource=Resource.create({"service.name": self.service_name}),
                                       sampler=ParentBased(TraceIdRatioBased(self.sample_ratio)))
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter or OTLPSpanExporter(endpoint=self.endpoint)))
        for name, listener in _DB_EVENTS:
            event.listen(self.engine, name, listener)
        _install_wrappers()
        _tracer = self.provider.get_tracer("idbroker")

    def stop(self) -> None:
        global _tracer
        if self.provider is None:
            return
        _tracer = None
        _remove_wrappers()
        for name, listener in _DB_EVENTS:
            if event.contains(self.engine, name, listener):
                event.remove(self.engine, name, listener)
        self.provider.shutdown()  # flushes the batch
        self.provider = None

    middleware = TracedRequests
