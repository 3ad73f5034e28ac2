"""Fuzz: schemathesis over the admin API's own OpenAPI document (/admin/api/v1/openapi.json),
in-process against the ASGI app, with a real client_credentials token carrying
idbroker:admin:write. Every operation gets examples that fit the schema and examples that do not
(negative mode). No answer may be a 5xx; every answer must be documented for its operation
(status code, content type, body schema, headers); no request may hang (an ASGI guard cancels a
request that takes longer than HANG_SECONDS and the test fails).

The heavy run (>= 10,000 requests) is on SQLite; PostgreSQL gets a sample. HYPOTHESIS_PROFILE
is not read: the example counts are set here, so each run sends the same number of requests."""

from __future__ import annotations

import os
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from starlette.testclient import TestClient

from idbroker.endpoints.admin.spec import BASE

# In the test extra (pyproject.toml); skipped, not an import error, in a venv made before it was.
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (test extra) is not installed")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

HANG_SECONDS = 30
TOTAL = int(os.environ.get("IDBROKER_ADMIN_FUZZ_TOTAL", "10000"))  # requests on SQLite
SAMPLE = 600  # requests on PostgreSQL
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


class Hung(AssertionError):
    pass


def guarded(app: Any) -> Any:
    """The app, with every request cancelled (and reported) after HANG_SECONDS."""
    async def guard(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        try:
            with anyio.fail_after(HANG_SECONDS):
                await app(scope, receive, send)
        except TimeoutError:
            raise Hung(f"{scope.get('method')} {scope.get('path')} took more than {HANG_SECONDS}s") from None
    return guard


@pytest.fixture
def writer(http: Any, register: Any) -> dict[str, str]:
    client = register("fuzzer", scopes=["idbroker:admin:write"], grant_types=["client_credentials"],
                      response_types=[], redirect_uris=[], post_logout_redirect_uris=[])
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "client_credentials", "scope": "idbroker:admin:write"})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def test_schemathesis_finds_nothing(app, http, writer, user, database, request):
    total = TOTAL if request.node.callspec.params.get("database") == "sqlite" else SAMPLE
    document = http.get(f"{BASE}/openapi.json").json()
    document["servers"] = [{"url": "http://testserver"}]
    schema = schemathesis.openapi.from_dict(document)
    runs = [(op, mode) for op in (result.ok() for result in schema.get_all_operations())
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    sent = 0
    with TestClient(guarded(app), base_url="http://testserver", raise_server_exceptions=True) as client:
        for index, (operation, mode) in enumerate(runs):
            # What a small operation cannot use (no parameters: one request) goes to the next ones.
            budget = max(1, -(-(total - sent) // (len(runs) - index)))

            @settings(max_examples=budget, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      print_blob=True)
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                nonlocal sent
                kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=writer)
                client.cookies.clear()
                response = client.request(kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
                                          params=kwargs.get("params"), content=_content(kwargs),
                                          follow_redirects=False)
                sent += 1
                case.validate_response(response, checks=CHECKS, headers=writer)

            try:
                fuzz()
            except Unsatisfiable:  # negative mode of an operation that takes nothing
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert sent >= total * 0.9, sent


def _content(kwargs: dict[str, Any]) -> Any:
    if "json" in kwargs:
        import json
        return json.dumps(kwargs["json"]).encode()
    return kwargs.get("data") or kwargs.get("content")
