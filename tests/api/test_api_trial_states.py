"""Trial states are one enum (issue 28): the table's check constraint, the API's schemas and counts, and the
CLI's choices all name exactly the states of :class:`autopeft.trial_state.TrialState`, in its order."""

from __future__ import annotations

import pytest

from autopeft.api.schemas.studies import TrialCounts
from autopeft.cli import build_parser
from autopeft.migrations.tables import trials
from autopeft.trial_state import TrialState

STATES = [s.value for s in TrialState]


def test_the_table_the_schemas_and_the_counts_know_the_states_of_the_enum(client, study_body):
    check = next(c for c in trials.constraints if c.name == "ck_trials_state_known")
    assert str(check.sqltext) == "state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")"
    assert list(TrialCounts.model_fields) == STATES
    spec = client.get("/openapi.json").json()
    assert spec["components"]["schemas"]["TrialState"]["enum"] == STATES
    study = client.post("/api/v1/studies", json=study_body()).json()
    assert study["counts"] == dict.fromkeys(STATES, 0)
    bad = client.get(f"/api/v1/studies/{study['id']}/trials", params={"state": "sleeping"})
    assert bad.status_code == 422 and "state" in bad.json()["detail"]


def test_the_cli_offers_the_states_of_the_enum(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["study", "trials", "1", "--state", "sleeping"])
    assert "choose from " + ", ".join(f"'{s}'" for s in STATES) in capsys.readouterr().err
