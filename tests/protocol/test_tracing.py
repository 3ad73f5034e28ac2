"""OpenTelemetry traces (issue 13, Observability; web/tracing.py): off by default with no module
imported; on, the spans of a login, a token request and a back-channel logout reach a real OTLP/HTTP
receiver, nested as they ran, continuing a trusted proxy's traceparent, carrying no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, Flow, Quiet, make_settings, serving

from idbroker.settings import SettingsError

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

PROXY = ("127.0.0.1", 40000)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """A local OTLP/HTTP traces endpoint (and a back-channel logout endpoint that keeps the
    traceparent it was sent)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.traceparents: list[str | None] = []
        self.url = ""
        receiver = self

        class Handler(Quiet):
            def do_POST(self):  # noqa: N802
                body = self.body()
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            receiver.spans.extend(scope.spans)
                    self.answer(200, content_type="application/x-protobuf")
                else:
                    receiver.traceparents.append(self.headers.get("traceparent"))
                    self.answer(200, content_type="text/plain")

        self.handler = Handler


@pytest.fixture(scope="module")
def otlp():  # type: ignore[no-untyped-def]
    receiver = Receiver()
    with serving(receiver.handler) as receiver.url:
        yield receiver


@pytest.fixture
def settings_overrides(otlp: Receiver) -> dict[str, Any]:
    return {"otel_endpoint": otlp.url + "/v1/traces", "trusted_proxies": ["127.0.0.1/32"]}


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_a_login_token_and_logout_are_traced_without_secrets(app, otlp, register, user, provider):
    otlp.spans.clear()
    otlp.traceparents.clear()
    client = register(first_party=True, backchannel_logout_uri=otlp.url + "/bcl")
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    with TestClient(app, base_url=ISSUER, follow_redirects=False, client=PROXY,
                    headers={"traceparent": traceparent, "x-request-id": "req-trace-1"}) as http:
        q, verifier = Flow(http).code_flow(client)
        r = http.post("/oauth2/token", auth=client.basic, data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier})
        assert r.status_code == 200, r.text
        tokens = r.json()
        assert http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]}).status_code == 200
    # Leaving the client ran the lifespan's end: the batch was flushed to the receiver.
    spans = otlp.spans
    names = [s.name for s in spans]
    by_id = {s.span_id: s for s in spans}
    assert "POST /login" in names and "POST /oauth2/token" in names and "GET /oauth2/authorize" in names

    servers = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    for s in servers:  # the trusted proxy's trace continues
        assert s.trace_id.hex() == TRACE_ID and s.parent_span_id.hex() == PARENT_ID
        assert attrs(s)["idbroker.request_id"] == "req-trace-1"
    token = next(s for s in servers if s.name == "POST /oauth2/token")
    assert attrs(token)["http.route"] == "/oauth2/token" and attrs(token)["http.response.status_code"] == 200
    assert attrs(token)["http.request.method"] == "POST" and attrs(token)["client.address"] == "127.0.0.1"

    def root_of(span: Any) -> Any:
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
        return span

    # children: statements under the token request, argon2 under the login, the outgoing call
    statements = [s for s in spans if s.name.startswith("db ")]
    assert any(root_of(s) is token for s in statements)
    assert {attrs(s)["db.operation.name"] for s in statements} >= {"SELECT", "INSERT"}
    login = next(s for s in servers if s.name == "POST /login")
    verify = next(s for s in spans if s.name == "password verify")
    assert root_of(verify) is login and verify.trace_id.hex() == TRACE_ID
    outgoing = next(s for s in spans if s.kind == s.SPAN_KIND_CLIENT and s.name == "POST 127.0.0.1")
    assert root_of(outgoing).name == "GET /oauth2/logout"
    # the logout receiver got the trace, with the outgoing span as its parent
    assert otlp.traceparents == [f"00-{TRACE_ID}-{outgoing.span_id.hex()}-01"]

    secrets = [PASSWORD, q["code"], verifier, client.secret, tokens["access_token"], tokens["id_token"],
               tokens.get("refresh_token")]
    for s in spans:
        text = repr(s.name) + repr(attrs(s)) + repr([(e.name, e.attributes) for e in s.events])
        for secret in filter(None, secrets):
            assert secret not in text, (s.name, secret[:8])


def test_traceparent_from_an_untrusted_peer_starts_a_new_trace(app, otlp, user):
    otlp.spans.clear()
    otlp.traceparents.clear()
    with TestClient(app, base_url=ISSUER, follow_redirects=False, client=("192.0.2.7", 1234)) as http:
        assert http.get("/healthz", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}).status_code == 200
    (span,) = [s for s in otlp.spans if s.name == "GET /healthz"]
    assert span.trace_id.hex() != TRACE_ID and not span.parent_span_id


def test_off_by_default_imports_no_opentelemetry_module(tmp_path):
    script = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from starlette.testclient import TestClient\n"
        "from support import make_settings\n"
        "from idbroker.app import create_app\n"
        "from idbroker.provider import Provider\n"
        "from idbroker.store.migrate import upgrade\n"
        f"provider = Provider(make_settings({str(tmp_path)!r}))\n"
        "upgrade(provider.db.engine)\n"
        "app = create_app(provider=provider)\n"
        "with TestClient(app) as http:\n"
        "    assert http.get('/healthz').status_code == 200\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
        "print('clean')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr[-2000:]


def test_an_endpoint_without_the_packages_is_one_line_and_a_non_zero_exit(tmp_path):
    script = ("import sys\n"
              "sys.modules['opentelemetry.sdk'] = None\n"  # as if the otel extra were not installed
              "from idbroker.cli import main\n"
              "sys.argv = ['idbroker', 'serve']\n"
              "main()\n")
    env = {**os.environ, "IDBROKER_OTEL_ENDPOINT": "http://127.0.0.1:4318/v1/traces",
           "IDBROKER_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "otel_endpoint is set but OpenTelemetry is not installed" in done.stderr, done.stderr


def test_settings_check_the_endpoint_and_the_ratio(tmp_path):
    with pytest.raises(SettingsError) as err:
        make_settings(tmp_path, otel_endpoint="collector:4318", otel_sample_ratio=1.5)
    assert any("otel_endpoint must be an http(s) URL" in p for p in err.value.problems)
    assert any("otel_sample_ratio must be between 0 and 1" in p for p in err.value.problems)


def test_upstream_sign_in_steps_are_spans_of_their_requests(app, otlp, provider, register, monkeypatch):
    from test_upstream_sign_in import FakeUpstream, authorize, button, come_back, follow, to_upstream

    from idbroker.federation import kinds

    monkeypatch.setitem(kinds.UPSTREAMS, "fake", FakeUpstream)
    provider.upstreams.add("up1", "fake", "Example Upstream")
    client = register("rp", first_party=True)
    otlp.spans.clear()
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as http:  # lifespan: the kind is wrapped
        page = follow(http, authorize(http, client)[0])
        sent = to_upstream(http, button(page))
        r = follow(http, come_back(http, sent, sub="u-1", email="gus@example.com", verified="1"))
        assert r.status_code == 303 and r.headers["location"].startswith(client.redirect_uri), r.text
    by_id = {s.span_id: s for s in otlp.spans}
    start = next(s for s in otlp.spans if s.name == "upstream start")
    finish = next(s for s in otlp.spans if s.name == "upstream finish")
    assert attrs(start)["idbroker.upstream.kind"] == attrs(finish)["idbroker.upstream.kind"] == "fake"
    assert by_id[start.parent_span_id].name == "GET /idp/{id}/start"
    assert by_id[finish.parent_span_id].name == "GET /idp/{id}/callback"
    assert "call" not in FakeUpstream.__dict__["start"].__code__.co_name  # restored when the app stopped
