"""schemathesis against the server's own /openapi.json — every operation, domain API and Open
Inference Protocol alike: no 5xx, every response matches its declared schema, status code,
content type and headers, and schema-invalid requests are refused.

Path parameters are drawn from the served model names (and versions) as well as arbitrary text,
so requests reach the models, not only the 404 branch. ``HELIXSERVE_FUZZ_EXAMPLES`` (default 200)
sets the budget: a tenth of it per operation (20, a few hundred requests in all);
``python -m reliability.fuzz`` raises it to thousands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.support.server import Running, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
MODELS = sorted(p.name for p in ZOO.iterdir() if p.is_dir())
PER_OPERATION = max(10, int(os.environ.get("HELIXSERVE_FUZZ_EXAMPLES", "200")) // 10)
# A request over a documented limit (more than 10,000 inputs) is refused with 413, as declared:
# that is a rejection too.
CONFIG = SchemathesisConfig.from_str("""
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
""")


def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time a served model's name (and version 1 or an alias) instead of noise."""
    if not path_parameters:
        return st.just(path_parameters)
    real: dict[str, Any] = {}
    if "name" in path_parameters:
        real["name"] = st.sampled_from(MODELS)
    if "version" in path_parameters:
        real["version"] = st.sampled_from(["1", "production", "2", "latest"])
    if not real:
        return st.just(path_parameters)
    served = st.fixed_dictionaries({**{k: st.just(v) for k, v in path_parameters.items()}, **real})
    return st.one_of(st.just(path_parameters), served)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("schema"), access_log=False) as running_server:
        yield running_server


@pytest.fixture(scope="module")
def api_schema(server: Running) -> Any:
    loaded = schemathesis.openapi.from_url(server.url + "/openapi.json", config=CONFIG)
    loaded.hook(flatmap_path_parameters)
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=PER_OPERATION,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_whole_api_conforms(case: Any) -> None:
    # Schema-valid is not model-valid: a string is a valid `dnasequence` for the schema, but
    # whether it is a 50-nt DNA sequence depends on the served model, and such inputs are
    # rightly answered 422. Every other check (no 5xx, status codes, content types, headers,
    # response schemas, rejection of schema-invalid data) runs.
    # A multipart file part cannot be null: schemathesis's "null" file arrives as a 4-byte file
    # holding the text null, which predict-file rightly reads (and reports per record).
    excluded = [positive_data_acceptance]
    if case.operation.path.endswith("/predict-file"):
        excluded.append(negative_data_rejection)
    case.call_and_validate(excluded_checks=excluded)


def test_every_operation_is_covered(api_schema: Any) -> None:
    """The run above reaches the OIP routes and the domain API, not a subset of them."""
    paths = {operation.ok().path for operation in api_schema.get_all_operations()}
    assert {
        "/api/v1/models/{name}/predict",
        "/api/v1/models/{name}/predict-file",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v2/health/ready",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths


@pytest.mark.parametrize(
    ("version", "shown"),
    [("²", "'²'"), ("٣", "'٣'"), ("9" * 5000, "'" + "9" * 40 + "...'")],
    ids=["superscript", "arabic-indic", "5000-digits"],
)
def test_versions_that_only_look_numeric_are_404(server: Running, version: str, shown: str) -> None:
    """Found by schemathesis: ``'²'.isdigit()`` is true but ``int('²')`` fails (was a 500)."""
    reply = httpx.get(f"{server.url}/api/v1/models/primer-binding", params={"version": version})
    assert reply.status_code == 404
    assert reply.json()["detail"] == (
        f"model 'primer-binding' has no version or alias {shown}; served: 1, production."
    )
