"""The storage layer on both backends: conditional state changes, leases by time, the proposer lock."""

from __future__ import annotations

import inspect
import threading
from datetime import timedelta

import pytest

from autopeft import migrations
from autopeft.api.errors import NotFoundError, StaleLeaseError
from autopeft.api.records import NewStudy, NewTrial, Report
from autopeft.api.storage import Storage, utcnow
from autopeft.api.storage_protocol import StorageProtocol
from autopeft.optimize import ParamBudget, SobolSettings, WarmStartSettings
from autopeft.train.settings import TrainingSettings


def _study(max_trials: int = 10, baselines: int = 0, max_retries: int = 1, lease: float = 30.0) -> NewStudy:
    return NewStudy(
        name="s",
        task={"name": "rte"},
        model=None,
        hf_config={"model_type": "bert"},
        num_labels=2,
        space_name="autopeft",
        space={},
        optimizer=SobolSettings(),
        training=TrainingSettings(),
        seed=0,
        max_trials=max_trials,
        max_retries=max_retries,
        lease_seconds=lease,
        baselines=tuple(_trial(i, "baseline") for i in range(baselines)),
    )


def _trial(i: int, source: str = "sobol") -> NewTrial:
    return NewTrial({"lora": {"rank": i + 1}}, f"key{i:04d}", (i / 100,), source)


@pytest.fixture
def storage(engine) -> StorageProtocol:
    """The suite below runs against the contract, on each backend."""
    migrations.upgrade(engine)
    storage = Storage(engine)
    assert isinstance(storage, StorageProtocol)
    return storage


def test_storage_keeps_the_written_contract() -> None:
    """Every call of the contract exists on the class with the signature written there, and the
    service, the proposer and the routes call nothing else."""
    calls = [name for name, value in vars(StorageProtocol).items() if callable(value) and not name.startswith("_")]
    for name in calls:
        assert inspect.signature(getattr(Storage, name)) == inspect.signature(getattr(StorageProtocol, name)), name
    public = {name for name, value in vars(Storage).items() if callable(value) and not name.startswith("_")}
    assert public == set(calls)


def _fill(storage: Storage, study_id: int, n: int, first: int = 0) -> list[int]:
    assert storage.acquire_proposal_lock(study_id, "p", 60)
    try:
        return storage.add_proposals(study_id, "p", [_trial(first + i) for i in range(n)])
    finally:
        storage.release_proposal_lock(study_id, "p")


def test_claims_hand_out_the_oldest_queued_trial_once(storage):
    study = storage.create_study(_study(baselines=2))
    ids = [c.trial.id for c in (storage.claim("w1"), storage.claim("w2"))]
    assert [storage.get_trial(i).number for i in ids] == [0, 1]
    assert storage.claim("w3") is None
    assert storage.claim("w3", study_id=study.id) is None


def test_claim_respects_the_study_filter(storage):
    a = storage.create_study(_study(baselines=1))
    b = storage.create_study(_study(baselines=1))
    got = storage.claim("w", study_id=b.id)
    assert got is not None and got.trial.study_id == b.id
    assert storage.claim("w", study_id=b.id) is None
    assert storage.claim("w").trial.study_id == a.id


def test_complete_is_idempotent_and_refuses_a_different_result(storage):
    storage.create_study(_study(baselines=1))
    c = storage.claim("w")
    first = storage.complete(c.trial.id, c.lease.token, Report(0.7, 10, 0.01, {"f1": 0.5}, {"s": 1}))
    again = storage.complete(c.trial.id, c.lease.token, Report(0.7, 10, 0.01, {"f1": 0.5}, {"s": 1}))
    assert first == again and first.state == "completed"
    with pytest.raises(StaleLeaseError, match="already completed"):
        storage.complete(c.trial.id, c.lease.token, Report(0.9, 10, 0.01))
    with pytest.raises(StaleLeaseError):
        storage.fail(c.trial.id, c.lease.token, "boom")
    with pytest.raises(NotFoundError, match="trial 999"):
        storage.complete(999, c.lease.token, Report(0.7, 10, 0.01))


def test_expired_lease_requeues_then_fails_after_the_retries(storage):
    storage.create_study(_study(baselines=1, max_retries=1, lease=10))
    now = utcnow()
    first = storage.claim("w1", now=now)
    later = now + timedelta(seconds=11)
    assert storage.requeue_expired(later) == (1, 0)
    second = storage.claim("w2", now=later)
    assert second.trial.id == first.trial.id and second.trial.attempts == 2
    with pytest.raises(StaleLeaseError, match="worker 'w2' holds it now"):
        storage.heartbeat(first.trial.id, first.lease.token, now=later)
    with pytest.raises(StaleLeaseError, match="handed on"):
        storage.complete(first.trial.id, first.lease.token, Report(0.5, 1, 0.1), now=later)
    assert storage.requeue_expired(later + timedelta(seconds=11)) == (0, 1)
    failed = storage.get_trial(first.trial.id)
    assert failed.state == "failed" and "lease expired 2 times" in failed.error and "w2" in failed.error


def test_a_claim_sweeps_expired_leases_when_the_queue_is_empty(storage):
    storage.create_study(_study(baselines=1, lease=5))
    now = utcnow()
    first = storage.claim("w1", now=now)
    again = storage.claim("w2", now=now + timedelta(seconds=6))
    assert again is not None and again.trial.id == first.trial.id and again.lease.token != first.lease.token


def test_heartbeat_extends_and_release_requeues(storage):
    storage.create_study(_study(baselines=1, lease=10))
    now = utcnow()
    c = storage.claim("w", now=now)
    lease = storage.heartbeat(c.trial.id, c.lease.token, now=now + timedelta(seconds=8))
    assert lease.expires_at == now + timedelta(seconds=18)
    assert storage.requeue_expired(now + timedelta(seconds=12)) == (0, 0)
    released = storage.release(c.trial.id, c.lease.token)
    assert released.state == "queued" and released.expiries == 0
    with pytest.raises(StaleLeaseError):
        storage.release(c.trial.id, c.lease.token)


def test_proposals_need_the_lock_and_stay_within_the_budget(storage):
    study = storage.create_study(_study(max_trials=5, baselines=1))
    assert storage.add_proposals(study.id, "nobody", [_trial(9)]) == []  # no lock held
    assert storage.acquire_proposal_lock(study.id, "a", 60)
    assert not storage.acquire_proposal_lock(study.id, "b", 60)
    batch = [_trial(i) for i in range(6)]
    assert len(storage.add_proposals(study.id, "a", batch)) == 3  # 4 fit; key0000 is the baseline's already
    assert storage.get_study(study.id).n_trials == 4
    assert len(storage.add_proposals(study.id, "a", batch[4:])) == 1  # the budget of 5 is full
    assert storage.get_study(study.id).n_trials == 5
    storage.release_proposal_lock(study.id, "a")
    assert storage.acquire_proposal_lock(study.id, "b", 60)
    assert storage.demands(utcnow() - timedelta(minutes=1)) == ([], 0)  # budget used: nothing to propose


def test_an_expired_proposal_lock_can_be_taken_and_the_old_owner_cannot_insert(storage):
    study = storage.create_study(_study())
    now = utcnow()
    assert storage.acquire_proposal_lock(study.id, "a", 5, now=now)
    assert storage.acquire_proposal_lock(study.id, "b", 5, now=now + timedelta(seconds=6))
    assert storage.add_proposals(study.id, "a", [_trial(0)]) == []
    assert len(storage.add_proposals(study.id, "b", [_trial(0)])) == 1


def test_stop_keeps_queued_trials_blocks_claims_and_proposals_and_resume_undoes_it(storage):
    study = storage.create_study(_study(max_trials=10, baselines=3))
    running = storage.claim("w")
    stopped = storage.stop_study(study.id)
    assert stopped.stopped_at is not None and stopped.n_trials == 3
    assert storage.stop_study(study.id).stopped_at == stopped.stopped_at  # stopping again changes nothing
    assert storage.claim("w") is None and storage.claim("w", study.id) is None
    assert storage.idle_reason(study.id) == "study stopped" and storage.idle_reason(None) == "no work"
    assert storage.acquire_proposal_lock(study.id, "p", 60)
    assert storage.add_proposals(study.id, "p", [_trial(50)]) == []
    assert storage.complete(running.trial.id, running.lease.token, Report(0.5, 1, 0.1)).state == "completed"
    resumed = storage.resume_study(study.id)
    assert resumed.stopped_at is None and resumed.resumed_at is not None
    assert [storage.claim("w").trial.number for _ in range(2)] == [1, 2]


def test_snapshot_splits_trials_by_state(storage):
    study = storage.create_study(_study(max_trials=10, baselines=4))
    done, failed, running = storage.claim("a"), storage.claim("b"), storage.claim("c")
    storage.complete(done.trial.id, done.lease.token, Report(0.8, 5, 0.02))
    storage.fail(failed.trial.id, failed.lease.token, "out of memory")
    snap = storage.proposal_snapshot(study.id)
    assert snap.completed == ((done.trial.x, 0.8, 0.02),)
    assert snap.failed == (failed.trial.x,)
    assert set(snap.pending) == {running.trial.x, (0.03,)}
    assert snap.queued == 1 and snap.trials == 4


def test_delete_study_removes_its_trials(storage):
    study = storage.create_study(_study(baselines=2))
    storage.delete_study(study.id)
    with pytest.raises(NotFoundError):
        storage.get_study(study.id)
    assert storage.claim("w") is None


@pytest.mark.parametrize("claimers", [32])
def test_concurrent_claimers_get_each_trial_once(storage, claimers):
    """Many threads claim and complete at once: every trial exactly once, none lost."""
    study = storage.create_study(_study(max_trials=200))
    _fill(storage, study.id, 200)
    taken: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        try:
            while (c := storage.claim(name)) is not None:
                storage.complete(c.trial.id, c.lease.token, Report(0.5, 1, 0.01))
                with lock:
                    taken.append(c.trial.id)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(taken) == 200 and len(set(taken)) == 200
    counts, _ = storage.trial_counts([study.id])[study.id]
    assert counts == {"completed": 200}


def test_leases_get_a_grace_period_of_one_lease_after_a_start(engine):
    """A restarted server must not expire leases before the workers' retries can arrive (issue 13, item 3)."""
    migrations.upgrade(engine)
    before = Storage(engine)
    before.create_study(_study(baselines=1, lease=10))
    claimed_at = utcnow() - timedelta(seconds=60)  # claimed long ago; the server was down since
    c = before.claim("w", now=claimed_at)
    restarted = Storage(engine, started_at=utcnow())
    assert restarted.requeue_expired(restarted.started_at + timedelta(seconds=9)) == (0, 0)
    assert restarted.claim("other", now=restarted.started_at + timedelta(seconds=9)) is None  # no lazy sweep either
    lease = restarted.heartbeat(c.trial.id, c.lease.token, now=restarted.started_at + timedelta(seconds=9))
    assert lease.expires_at == restarted.started_at + timedelta(seconds=19)
    assert restarted.requeue_expired(restarted.started_at + timedelta(seconds=20)) == (1, 0)


def test_a_late_report_lands_while_nobody_has_claimed_the_trial_again(storage):
    storage.create_study(_study(baselines=2, max_retries=3, lease=10))
    now = utcnow()
    a, b = storage.claim("w1", now=now), storage.claim("w2", now=now)
    later = now + timedelta(seconds=11)
    assert storage.requeue_expired(later) == (2, 0)

    done = storage.complete(a.trial.id, a.lease.token, Report(0.7, 10, 0.01), now=later)
    assert done.state == "completed" and done.metric == 0.7 and done.attempts == 1 and done.expiries == 1
    again = storage.complete(a.trial.id, a.lease.token, Report(0.7, 10, 0.01), now=later)  # repeated: harmless
    assert again == done
    with pytest.raises(StaleLeaseError, match="already completed"):  # the first valid result wins
        storage.complete(a.trial.id, a.lease.token, Report(0.9, 10, 0.01), now=later)

    taken = storage.claim("w3", now=later)  # the queued copy of a was withdrawn: w3 gets b
    assert taken.trial.id == b.trial.id and taken.trial.attempts == 2
    with pytest.raises(StaleLeaseError, match="handed on"):  # b went to w3: w2's late report is refused
        storage.complete(b.trial.id, b.lease.token, Report(0.5, 10, 0.01), now=later)
    assert storage.claim("w4", now=later) is None


def test_a_trial_its_expiries_failed_still_takes_its_worker_late_report(storage):
    storage.create_study(_study(baselines=1, max_retries=0, lease=10))
    now = utcnow()
    a = storage.claim("w1", now=now)
    assert storage.requeue_expired(now + timedelta(seconds=11)) == (0, 1)
    with pytest.raises(StaleLeaseError, match="already failed"):  # another token: refused
        storage.complete(a.trial.id, "not-the-token", Report(0.6, 10, 0.01))
    done = storage.complete(a.trial.id, a.lease.token, Report(0.6, 10, 0.01))  # nobody else can hold it
    assert done.state == "completed" and done.error is None and done.worker_id == "w1"


def test_a_heartbeat_under_the_lapsed_lease_takes_it_back_while_nobody_claimed_the_trial(storage):
    storage.create_study(_study(baselines=1, max_retries=2, lease=10))
    now = utcnow()
    a = storage.claim("w1", now=now)
    later = now + timedelta(seconds=11)
    assert storage.requeue_expired(later) == (1, 0)
    lease = storage.heartbeat(a.trial.id, a.lease.token, now=later)
    assert lease.token == a.lease.token and lease.expires_at == later + timedelta(seconds=10)
    back = storage.get_trial(a.trial.id)
    assert (back.state, back.worker_id, back.expiries, back.attempts) == ("running", "w1", 1, 1)
    assert storage.claim("w2", now=later) is None
    assert storage.complete(a.trial.id, a.lease.token, Report(0.6, 10, 0.01), now=later).state == "completed"


def test_a_released_trial_takes_no_late_report(storage):
    storage.create_study(_study(baselines=1, lease=10))
    c = storage.claim("w")
    storage.release(c.trial.id, c.lease.token)
    with pytest.raises(StaleLeaseError, match="back to the queue"):
        storage.complete(c.trial.id, c.lease.token, Report(0.6, 10, 0.01))


def test_a_warm_start_is_stored_and_earlier_results_are_read_back(storage):
    """Issue 19: the study keeps which studies it starts from; their completed trials are read by study."""
    earlier = storage.create_study(_study(baselines=3))
    done = [storage.claim("w") for _ in range(2)]
    for i, c in enumerate(done):
        storage.complete(c.trial.id, c.lease.token, Report(0.6 + 0.1 * i, 5, 0.02))
    spec = WarmStartSettings(studies=[earlier.id], max_configs=2)
    warm = NewStudy(**{**_study().__dict__, "warm_start": spec, "baselines": (_trial(7, "warm_start"),)})
    study = storage.create_study(warm)
    assert study.warm_start == spec and storage.get_study(study.id).warm_start == spec
    assert earlier.warm_start is None
    got = storage.completed_trials([earlier.id, 12345])
    assert [(t.study_id, t.id, t.metric) for t in got] == [(earlier.id, done[0].trial.id, 0.6), (earlier.id, done[1].trial.id, 0.7)]
    assert got[0].config == {"lora": {"rank": 1}} and got[0].param_fraction == 0.02
    assert storage.completed_trials([]) == []
    assert storage.trial_sources(study.id) == {"warm_start": 1}
    assert storage.trial_sources(earlier.id) == {"baseline": 3}
    assert storage.proposal_snapshot(study.id).warm_started == 1
    assert storage.proposal_snapshot(earlier.id).warm_started == 0


def test_a_study_s_settings_come_back_as_the_models_it_was_stored_with(storage):
    """Issue 28: settings are parsed once, when a row becomes a record; the budget is a field of its own."""
    budget = ParamBudget(max_param_fraction=0.005)
    new = NewStudy(**{**_study().__dict__, "constraints": budget, "training": TrainingSettings(max_steps=40)})
    study = storage.get_study(storage.create_study(new).id)
    assert study.optimizer == SobolSettings() and study.constraints == budget
    assert study.training.max_steps == 40 and study.early_stopping is None and study.warm_start is None
    assert [s.constraints for s in storage.list_studies()] == [budget]
