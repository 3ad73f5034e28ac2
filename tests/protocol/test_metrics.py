"""/metrics (issue 13, Observability): Prometheus text through HTTP, the counters move with what
happens, access by address (metrics_allow) or a Bearer token with scope idbroker:metrics, and - with a
real ``idbroker serve --workers 2`` - every worker's counts added up whichever worker is scraped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, Flow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))

LOOPBACK = ("127.0.0.1", 40000)


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture
def local(app: Any):  # type: ignore[no-untyped-def]
    """A browser and scraper on the loopback address (allowed by the default metrics_allow)."""
    with TestClient(app, base_url=ISSUER, follow_redirects=False, client=LOOPBACK) as client:
        yield client


def scrape(http: Any, **headers: str) -> str:
    r = http.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def test_counters_move_after_a_login_a_failure_and_a_token(local, register, user):
    client = register()
    before = scrape(local)
    flow = Flow(local)
    q, verifier = flow.code_flow(client)
    r = local.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    local.cookies.clear()
    page = local.get("/login")
    from support import form_fields
    bad = local.post("/login", data={**form_fields(page.text), "username": "alice@example.com",
                                     "password": PASSWORD + "x"})
    assert bad.status_code in (200, 401), bad.status_code
    after = scrape(local)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("idbroker_tokens_issued_total", grant="authorization_code") == 1
    assert moved("idbroker_http_requests_total", route="/oauth2/token", method="POST", status="200") == 1
    assert moved("idbroker_http_request_duration_seconds_count", route="/oauth2/token", method="POST") == 1
    assert moved("idbroker_audit_events_total", kind="login.succeeded") == 1
    assert moved("idbroker_audit_events_total", kind="login.failed") == 1
    assert moved("idbroker_logins_total") == 1
    assert moved("idbroker_login_failures_total", method="password") == 1
    # Route templates, never URLs: the query string of /oauth2/authorize is not a label.
    assert "code_challenge" not in after and q["code"] not in after
    assert value(after, "idbroker_http_requests_total", route="/oauth2/authorize") >= 1
    assert "idbroker_db_pool_checked_out" in after


def test_a_lock_is_counted(local, user):
    from support import form_fields
    before = scrape(local)
    for _ in range(6):
        page = local.get("/login")
        local.post("/login", data={**form_fields(page.text), "username": "alice@example.com", "password": "wrong!"})
    after = scrape(local)
    assert value(after, "idbroker_account_locks_total") - value(before, "idbroker_account_locks_total") == 1


def test_other_addresses_need_a_token_with_the_metrics_scope(http, register, app):
    # The test client's peer ("testclient") is no loopback address.
    r = http.get("/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "idbroker_" not in r.text
    assert http.get("/metrics", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Basic eDp5"}).status_code == 401

    plain = register("plain", grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                     post_logout_redirect_uris=[], scopes=["api"])
    token = http.post("/oauth2/token", auth=plain.basic, data={"grant_type": "client_credentials"}).json()
    r = http.get("/metrics", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]

    scraper = register("scraper", grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                       post_logout_redirect_uris=[], scopes=["idbroker:metrics"])
    token = http.post("/oauth2/token", auth=scraper.basic,
                      data={"grant_type": "client_credentials", "scope": "idbroker:metrics"}).json()
    r = http.get("/metrics", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 200 and "idbroker_http_requests_total" in r.text

    # A revoked token no longer reads them.
    assert http.post("/oauth2/revoke", auth=scraper.basic, data={"token": token["access_token"]}).status_code == 200
    assert http.get("/metrics", headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 401


def test_loopback_is_allowed_by_default_and_spoofed_forwarding_does_not_open_it(app):
    with TestClient(app, base_url=ISSUER, client=LOOPBACK) as local:
        assert local.get("/metrics").status_code == 200
    with TestClient(app, base_url=ISSUER, client=("192.0.2.7", 1)) as outside:
        # No trusted proxies: the forwarding headers of anyone are ignored.
        assert outside.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1",
                                                "Forwarded": "for=127.0.0.1"}).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"metrics_allow": ["10.0.0.0/8"]}], indirect=False)
def test_metrics_allow_names_the_networks(app, settings_overrides):
    with TestClient(app, base_url=ISSUER, client=("10.1.2.3", 1)) as inside:
        assert inside.get("/metrics").status_code == 200
    with TestClient(app, base_url=ISSUER, client=LOOPBACK) as local:  # loopback no longer listed
        assert local.get("/metrics").status_code == 401


# -- several worker processes -----------------------------------------------------------------------
def _per_file_counts(folder: Path, route: str) -> dict[str, float]:
    """idbroker_http_requests_total for `route`, per worker file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for path in sorted(folder.glob("counter_*.db")):
        read = MultiProcessCollector._read_metrics([str(path)])
        metrics = MultiProcessCollector._accumulate_metrics(read, True)
        out[path.name] = sum(s.value for m in metrics for s in m.samples
                             if s.name == "idbroker_http_requests_total" and s.labels.get("route") == route)
    return out


def test_two_workers_counts_are_added_up(tmp_path):
    from broker_process import Broker

    broker = Broker("sqlite", tmp_path, None, workers=2)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999999.db").write_bytes(b"left over from an earlier run")
    broker.start()
    try:
        folder = tmp_path / "metrics"
        assert not (folder / "counter_999999.db").exists()  # emptied at start
        made = 0
        # New connections until both workers have answered some (the kernel hands connections out).
        for _ in range(400):
            with httpx.Client(timeout=5.0) as http:
                assert http.get(f"{broker.issuer}/readyz").status_code == 200
            made += 1
            counts = _per_file_counts(folder, "/readyz")
            if made >= 10 and sum(1 for v in counts.values() if v > 0) >= 2:
                break
        counts = _per_file_counts(folder, "/readyz")
        assert sum(1 for v in counts.values() if v > 0) >= 2, (counts, broker.log())
        with httpx.Client(timeout=5.0) as http:
            text = http.get(f"{broker.issuer}/metrics").text
        assert value(text, "idbroker_http_requests_total", route="/readyz", status="200") == made == sum(
            counts.values())
    finally:
        broker.stop()


def test_upstream_calls_are_timed_and_counted(receiver):
    """The upstream providers' httpx client (provider.py) goes through TimedTransport."""
    from support import free_port, run_coroutine

    from idbroker.web import metrics
    from idbroker.web.upstream_http import TimedTransport

    base, _, _ = receiver
    host = "127.0.0.1"
    dead = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there

    def counted(outcome: str) -> float:
        return metrics.UPSTREAM_REQUESTS.labels(host=host, outcome=outcome)._value.get()

    ok, errors = counted("ok"), counted("error")
    timed = metrics.UPSTREAM_LATENCY.labels(host=host)._sum.get()

    async def calls() -> None:
        async with httpx.AsyncClient(transport=TimedTransport(), timeout=5.0) as http:
            assert (await http.post(f"{base}/token", data={"a": "b"})).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await http.get(dead)

    run_coroutine(calls())
    assert counted("ok") - ok == 1 and counted("error") - errors == 1
    assert metrics.UPSTREAM_LATENCY.labels(host=host)._sum.get() > timed


def test_the_upstream_client_is_timed(provider):
    from idbroker.web.upstream_http import TimedTransport

    assert isinstance(provider.upstreams.collaborators["http"].get()._transport, TimedTransport)


def test_pool_use_is_a_gauge(app, provider):
    # Background work (PostgreSQL's change-feed heartbeat, the purge) checks connections out for a
    # moment too, so a sample can overlap one of those: the gauge must track our checkout in at
    # least one of a few clean rounds, and never go below zero.
    samples = []
    with TestClient(app, base_url=ISSUER, client=LOOPBACK) as local:
        for _ in range(5):
            before = value(scrape(local), "idbroker_db_pool_checked_out")
            with provider.db.engine.connect():
                held = value(scrape(local), "idbroker_db_pool_checked_out")
            after = value(scrape(local), "idbroker_db_pool_checked_out")
            samples.append((before, held, after))
            if held == before + 1 and after == before:
                break
    assert all(min(sample) >= 0 for sample in samples)
    assert samples[-1][1] == samples[-1][0] + 1 and samples[-1][2] == samples[-1][0], samples


def test_dead_workers_live_gauges_are_dropped(tmp_path, monkeypatch):
    from idbroker.web import metrics

    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    dead = 2 ** 22 + 12345  # above pid_max's default: no such process
    for name in (f"gauge_livesum_{dead}.db", f"counter_{dead}.db", f"gauge_livesum_{__import__('os').getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    metrics.mark_dead_workers()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert f"gauge_livesum_{dead}.db" not in left  # its connections are no longer in use
    assert f"counter_{dead}.db" in left            # what it counted still counts


def test_second_steps_are_counted(local, register, user, clock):
    from mfa_helpers import authorize, code_at, enrol_totp, login_page, sign_in, submit_code

    sign_in(local)
    secret, _, _ = enrol_totp(local, clock)
    local.cookies.clear()
    clock.step()  # the enrolment's code is spent
    before = scrape(local)
    page, _ = authorize(local, register())
    page = login_page(local, page)
    assert submit_code(local, page, "000000" if code_at(secret, clock()) != "000000" else "111111").status_code == 400
    assert submit_code(local, page, code_at(secret, clock())).status_code == 303
    after = scrape(local)

    def moved(**labels: str) -> float:
        return value(after, "idbroker_mfa_verifications_total", **labels) - value(
            before, "idbroker_mfa_verifications_total", **labels)

    assert moved(factor="totp", outcome="failed") == 1 and moved(factor="totp", outcome="ok") == 1
    assert value(after, "idbroker_mfa_events_total", event="enrolled") >= 1


def test_collector_pauses_and_loop_lag_are_exported(app):
    import gc
    import time as clock

    with TestClient(app, base_url=ISSUER, client=LOOPBACK) as local:
        gc.collect()
        deadline = clock.monotonic() + 5
        while clock.monotonic() < deadline:
            text = scrape(local)
            if value(text, "idbroker_gc_pause_seconds_count", generation="2") and \
                    value(text, "idbroker_event_loop_lag_seconds_count"):
                break
            clock.sleep(0.05)
    assert value(text, "idbroker_gc_pause_seconds_count", generation="2") >= 1
    assert value(text, "idbroker_event_loop_lag_seconds_count") >= 1


def test_sqlite_writers_waits_for_their_turn_are_exported(local, register, user, provider):
    import time as clock

    client = register()
    before = value(scrape(local), "idbroker_write_turn_wait_seconds_count")
    Flow(local).code_flow(client)  # a sign-in: several writing transactions
    deadline = clock.monotonic() + 5  # the watch hands them over every 50 ms
    while True:
        moved = value(scrape(local), "idbroker_write_turn_wait_seconds_count") - before
        if moved or clock.monotonic() > deadline:
            break
        clock.sleep(0.05)
    if provider.db.writer_lock is None:  # PostgreSQL: its writers need no turn
        assert moved == 0
    else:
        assert moved >= 3


def test_one_time_batches_are_timed_by_kind(local, register, user):
    """A code exchange and a refresh each wait for a group-committed batch (oauth2/one_time_writer.py):
    its duration lands in idbroker_one_time_batch_seconds under the batch's kind."""
    import time as clock

    client = register(grant_types=["authorization_code", "refresh_token"])
    before = scrape(local)
    q, verifier = Flow(local).code_flow(client, scope="openid offline_access")
    r = local.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200 and "refresh_token" in r.json(), r.text
    r = local.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200, r.text

    def moved(text: str, kind: str) -> float:
        return value(text, "idbroker_one_time_batch_seconds_count", kind=kind) - value(
            before, "idbroker_one_time_batch_seconds_count", kind=kind)

    deadline = clock.monotonic() + 5  # the watch hands them over every 50 ms
    while True:
        after = scrape(local)
        if (moved(after, "authorization_code") and moved(after, "refresh_token")) or clock.monotonic() > deadline:
            break
        clock.sleep(0.05)
    assert moved(after, "authorization_code") == 1 and moved(after, "refresh_token") == 1
    assert value(after, "idbroker_one_time_batch_seconds_sum", kind="refresh_token") > value(
        before, "idbroker_one_time_batch_seconds_sum", kind="refresh_token")
