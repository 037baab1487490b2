"""Schemathesis against the app's own OpenAPI schema: generated requests, valid and invalid, never get a 500
and never get an answer the schema does not allow (status, content type, headers, body).

Driven through hypothesis directly (schemathesis' pytest plugin does not load under pytest 9).
Marked ``slow``: ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.test_api_stateful import CHECKS

pytestmark = pytest.mark.slow
EXAMPLES = 25


@pytest.fixture
def backend() -> str:
    return "postgres"  # the stricter backend: NUL bytes, integer ranges, JSON validity


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_request_gets_a_server_error(make_client, study_body, mode):
    client = make_client(claim_wait_s=0.0)
    study = client.post("/api/v1/studies", json=study_body(max_trials=20)).json()
    client.post("/api/v1/trials/claim", json={"worker_id": "seed", "study_id": study["id"]})
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Unsatisfiable:  # an operation without inputs has no invalid variant (GET /studies)
            assert mode is GenerationMode.NEGATIVE, operation.label
