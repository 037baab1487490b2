"""The loop of test_end_to_end.py on other architectures than BERT: an encoder with relative attention
(DeBERTa-v2), ModernBERT, and a decoder (Llama)."""

from __future__ import annotations

import httpx
import pytest

from tests.worker.e2e import finish, server, study_body, tiny_encoder, trials, worker

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["deberta-v2", "modernbert", "llama"])
def test_a_study_on_another_architecture_completes_through_the_server_and_a_worker(kind, env, tmp_path):
    """Issues 18 and 29: 4 short trials of the full space on a tiny random DeBERTa-v2 (v3 settings), ModernBERT
    or Llama (a decoder: its MLP's gate, up and down among the LoRA targets, no biases for BitFit)."""
    from autopeft.support import support_matrix

    model_dir = tiny_encoder.build_tiny_encoder(tmp_path / f"tiny-{kind}", kind=kind)
    with server(str(tmp_path / "arch.db"), env, tmp_path) as srv:
        api = httpx.Client(base_url=f"{srv.url}/api/v1", timeout=30)
        training = {"max_steps": 3, "batch_size": 8, "max_length": 64, "learning_rate": 0.01}
        created = api.post("/studies", json=study_body(model_dir, space="full", max_trials=4, training=training))
        assert created.status_code == 201, created.text
        study = created.json()
        w = worker(srv.url, f"w-{kind}", env, tmp_path, "--study", str(study["id"]), models=model_dir)
        try:
            finish([w], timeout=600)
        finally:
            log = (tmp_path / f"w-{kind}.log").read_text()
            print(log[-4000:])  # shown by pytest when the test fails
        assert w.returncode == 0, log

        done = trials(api, study["id"])
        assert len(done) == 4 and all(t["state"] == "completed" for t in done), (done, log)
        view = api.get(f"/studies/{study['id']}").json()
        assert view["model_shape"]["model_type"] == kind and view["state"] == "done"
        refused = {f for f, reason in support_matrix()[kind].items() if reason is not None}
        assert refused and not refused & set(view["space"]["families"])
        assert all(not refused & set(t["config"]) for t in done)
