"""Property-based: schemathesis generates requests from the app's own OpenAPI schema. No answer may
be a server error, and every answer must match the schema (status, content type, body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.slow

# What the issue asks of every answer. Left out: schemathesis' "valid data must be accepted" checks,
# since a schema-valid request can still name a data set that does not exist (a 422 by design).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[schemathesis.schemas.BaseSchema]:
    # An empty data root: any generated dataset is refused, so no study (and no training) starts.
    data_root = tmp_path / "data"
    data_root.mkdir()
    with LiveServer(make_settings(tmp_path / "home", data_root)) as client:
        yield schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")


def test_api_answers_match_its_schema(api_schema: schemathesis.schemas.BaseSchema) -> None:
    # schemathesis' pytest loader does not run under pytest 9 yet; its strategies do, through hypothesis.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
