"""Schemathesis, stateful: sequences of calls that follow the links between operations (a study's id
into its trials, a trial's id into its reports), with and without the API key, on SQLite and
PostgreSQL. Zero 5xx and zero responses that break the schema (status, content type, headers, body).

Bounded (``RUNS`` sequences of at most ``STEPS`` calls per case) so that the four cases take well under
a minute. Marked ``slow`` like the stateless schemathesis test.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import claim, report

pytestmark = pytest.mark.slow
KEY = "stateful-key"
RUNS, STEPS = 12, 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("with_key", [True, False], ids=["with key", "without key"])
def test_call_sequences_get_no_server_error_and_no_schema_violation(make_client, study_body, with_key):
    client = make_client(api_key=KEY, claim_wait_s=0.0, lease_seconds=120.0)
    auth = {"Authorization": f"Bearer {KEY}"}
    _seed(client, study_body, auth)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, headers=auth)
    assert schema.apply_stateful_inference(None).total >= 20  # links between studies, trials and reports
    headers = auth if with_key else {}
    calls: list[int] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            calls.append(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

    Workflow.run(
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    assert calls, "no call was made"
    if not with_key:
        assert set(calls) == {401}, sorted(set(calls))  # the key comes before everything else
    else:
        assert {200, 201} & set(calls), sorted(set(calls))  # calls went through, not only refusals


def _seed(client: Any, study_body: Any, auth: dict[str, str]) -> None:
    """A study with a completed, a running and a queued trial: something for the links to follow."""
    body = study_body(max_trials=6, baselines=[{"bitfit": {}}, {"serial_adapter": {"size": 8}}])
    study = client.post("/api/v1/studies", json=body, headers=auth).json()
    done = claim(client, "seed", study["id"], headers=auth).json()
    client.post(f"/api/v1/trials/{done['id']}/complete", json=report(done), headers=auth)
    claim(client, "seed", study["id"], headers=auth)
