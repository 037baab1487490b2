"""The early-stopping benchmark (benchmarks.early_stopping, benchmarks.analysis.early_stopping; issue 16):
seconds, hypervolume at equal compute, false stops by replay and by shared configurations, the targets.
Synthetic trials only."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopeft.early_stopping import EarlyStoppingSettings
from benchmarks import early_stopping as es
from benchmarks.analysis import early_stopping as ea
from benchmarks.harness import records


def trial(number: int, fraction: float, curve: list[list[float]], *, state: str = "completed", seconds: float = 10.0,
          dev: float | None = None, config: dict | None = None) -> dict:
    best = max(m for _, m in curve)
    return {
        "number": number,
        "state": state,
        "config": config or {"lora": {"rank": number}},
        "param_fraction": fraction,
        "metric": best,
        "curve": curve,
        "last_step": int(curve[-1][0]),
        "started_at": f"2026-01-01T00:{number:02d}:00Z",
        "finished_at": f"2026-01-01T01:{number:02d}:00Z",
        "duration_s": seconds + 1,
        "extra": {"train_seconds": seconds, "metric_name": "accuracy",
                  "metrics": {"dev": {"accuracy": best - 0.01 if dev is None else dev}}},
    }


FULL = [[50, 0.80], [100, 0.84], [150, 0.86], [200, 0.87]]


def test_a_trial_far_below_three_smaller_earlier_peers_would_be_stopped_in_replay() -> None:
    peers = [trial(i, 0.001, FULL) for i in range(3)]
    bad = trial(3, 0.01, [[50, 0.55], [100, 0.56], [150, 0.57], [200, 0.58]])
    smaller_and_bad = trial(4, 0.0001, [[50, 0.55], [100, 0.56], [150, 0.57], [200, 0.58]])
    settings = EarlyStoppingSettings(enabled=True)
    assert ea.replay_stops([*peers, bad, smaller_and_bad], settings, 200) == {3: 50}
    # the same trial started first has no peers yet: never stopped
    first = dict(bad, started_at="2025-12-31T00:00:00Z")
    assert ea.replay_stops([*peers, first], settings, 200) == {}


def test_hypervolume_at_equal_training_seconds() -> None:
    trials = [trial(0, 0.01, FULL, seconds=30), trial(1, 0.001, FULL, seconds=30),
              trial(2, 0.02, FULL, state="stopped", seconds=5)]
    points = ea.hypervolume_over_seconds(trials)
    assert [s for s, _ in points] == [30, 60, 65]
    assert points[1][1] > points[0][1] and points[2][1] == points[1][1]  # a stopped trial adds no result
    assert ea.hypervolume_at(points, 29) == 0.0 and ea.hypervolume_at(points, 45) == points[0][1]
    assert ea.hypervolume_at(points, 1e9) == points[-1][1]


def test_analyse_counts_seconds_false_stops_and_evaluates_the_targets() -> None:
    # bigger and better: all four on the front
    cheap = [trial(i, 0.001 * (i + 1), [[s, m + 0.01 * i] for s, m in FULL], seconds=60) for i in range(4)]
    off = [*cheap, trial(4, 0.05, [[50, 0.5], [100, 0.5], [150, 0.5], [200, 0.5]], seconds=60)]
    # with early stopping the bad trial stops at step 50, and so (wrongly) does a front configuration
    on = [*cheap[:3], trial(3, 0.004, [[50, 0.80]], state="stopped", seconds=15, config=cheap[3]["config"]),
          trial(4, 0.05, [[50, 0.5]], state="stopped", seconds=15)]
    records = {
        ea.key(0, "off"): {"id": 1, "trials": off, "study": {"hypervolume": 2.0}},
        ea.key(0, "on"): {"id": 2, "trials": on, "study": {"hypervolume": 1.9}},
    }
    plan = {"seeds": [0], "training": {"max_steps": 200}}
    out = ea.analyse(records, plan)
    (row,) = out["seeds"]
    assert row["off"]["train_seconds"] == 300 and row["on"]["train_seconds"] == 210
    assert row["seconds_ratio"] == pytest.approx(0.7)
    assert row["on"]["stopped"] == 2 and row["off"]["stopped"] == 0
    front_off = {t["trial"] for t in row["off"]["front"]}
    assert 3 in front_off and row["front_off_in_on"] == len(front_off)
    assert row["front_off_stopped_in_on"] == 1
    met = {t["target"]: t["met"] for t in out["targets"]}
    assert met["at the same number of trials, at most 60% of the training seconds"] is False
    assert met["a trial that would have been on the front is stopped in at most 1 case in 10"] is False
    # the seed of a missing arm is left out rather than half-counted
    assert ea.analyse({ea.key(0, "off"): records[ea.key(0, "off")]}, plan)["seeds"] == []


def test_the_measured_section_replaces_itself_in_the_page(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text("# Early stopping\n\nintro\n")
    es.write_section(doc, f"{es.BEGIN}\nfirst\n{es.END}\n")
    es.write_section(doc, f"{es.BEGIN}\nsecond\n{es.END}\n")
    text = doc.read_text()
    assert text.startswith("# Early stopping\n\nintro\n") and "second" in text and "first" not in text
    assert text.count(es.BEGIN) == 1


def test_replay_savings_scale_each_stopped_trial_by_the_steps_it_skips() -> None:
    peers = [trial(i, 0.001, FULL, seconds=100) for i in range(3)]
    bad = trial(3, 0.01, [[50, 0.55], [100, 0.56], [150, 0.57], [200, 0.58]], seconds=100)
    out = ea.replay_savings([*peers, bad], EarlyStoppingSettings(enabled=True), 200)
    # 400 s spent; the bad trial stops at step 50 of 200: 75 s saved
    assert out["stopped"] == 1 and out["seconds_ratio"] == pytest.approx(325 / 400)
    assert out["front_stopped"] == 0 and out["front"] == 1
    # a rule that needs more peers than there are stops nothing
    none = ea.replay_savings([*peers, bad], EarlyStoppingSettings(enabled=True, min_peers=4), 200)
    assert none["stopped"] == 0 and none["seconds_ratio"] == 1.0


def test_finished_seeds_are_published_and_a_fresh_checkout_restores_only_the_same_studies(tmp_path) -> None:
    plan = es.make_plan(es.parse_args(["--out", str(tmp_path / "run"), "--seeds", "0", "1"]))
    assert plan["trials"] == es.TRIALS == 30 and es.command(plan) == es.COMMAND
    assert es.command({**plan, "trials": 16}).endswith(" --trials 16")
    out, published = Path(plan["out"]), tmp_path / "published"
    bodies = {ea.key(s, arm): es.study_body(plan, s, arm) for s in (0, 1) for arm in ea.ARMS}
    for k in (ea.key(0, "off"), ea.key(0, "on")):  # seed 0 finished in an earlier checkout
        records.save_json(out / "studies" / f"{k}.json", {"body": bodies[k], "trials": [], "finished": "x"})
    records.publish_records(published, out, [ea.key(0, "off"), ea.key(0, "on"), ea.key(1, "off")])
    assert sorted(p.name for p in published.iterdir()) == ["es-off-seed0.json", "es-on-seed0.json"]

    fresh = tmp_path / "fresh"
    moved = {k: {**b, "task": {**b["task"], "data_dir": "/elsewhere/glue"}} for k, b in bodies.items()}
    assert records.restore_records(published, fresh, moved) == [ea.key(0, "off"), ea.key(0, "on")]
    assert (fresh / "studies" / "es-on-seed0.json").exists() and not (fresh / "studies" / "es-off-seed1.json").exists()
    # another budget is another study: nothing is restored for it
    other = {k: {**b, "max_trials": 16} for k, b in bodies.items()}
    assert records.restore_records(published, tmp_path / "other", other) == []


def test_the_oracle_bound_spares_the_front_and_counts_front_trials_at_the_floor() -> None:
    late = [[50, 0.53], [100, 0.80], [150, 0.85], [200, 0.86]]  # small, late-blooming: the front
    early = [[50, 0.75], [100, 0.80], [150, 0.82], [200, 0.84]]  # large, early leader: dominated at the end
    trials = [trial(0, 0.001, late, seconds=40), trial(1, 0.01, early, seconds=100), trial(2, 0.02, early, seconds=100)]
    rows = {o["step"]: o for o in ea.oracle(trials, 200)}
    assert sorted(rows) == [50, 100, 150]  # the last evaluation is never a stop
    # stopping both dominated trials at step 50 saves 3/4 of their 200 s of 240 s
    assert rows[50]["seconds_ratio"] == pytest.approx((240 - 150) / 240)
    assert rows[100]["seconds_ratio"] == pytest.approx((240 - 100) / 240)
    assert rows[50]["front"] == 1 and rows[50]["front_at_floor"] == 1 and rows[50]["floor"] == 0.53
    assert rows[100]["front_at_floor"] == 1  # 0.80 everywhere at step 100: still indistinguishable
    assert rows[150]["front_at_floor"] == 0
    # trials 1 and 2 lead at step 50 (above the floor): the split oracle stops them there
    split = ea.oracle_split(trials, 200)
    assert split["stopped_first"] == [1, 2] and split["front_above_floor"] == [] and split["steps"] == [50, 100]
    assert split["seconds_ratio"] == pytest.approx((240 - 150) / 240)
    assert ea.oracle_split([trials[0]], 50) is None  # one evaluation before the end: no second step


def test_the_grid_finds_the_cheapest_setting_for_each_number_of_front_stops(tmp_path: Path) -> None:
    peers = [trial(i, 0.001, FULL) for i in range(3)]
    bad = trial(3, 0.01, [[50, 0.55], [100, 0.56], [150, 0.57], [200, 0.58]], seconds=100)
    best = ea.grid_best([*peers, bad], 200)
    assert list(best) == [0]  # the front (one of trials 0-2: same size, same results) is never stopped
    assert best[0]["stopped"] == 1 and best[0]["seconds_ratio"] == pytest.approx((130 - 75) / 130)
    assert set(best[0]["settings"]) == set(ea.GRID)
    plan = {"training": {"max_steps": 200}, "seeds": [0, 1], "trials": 4, "eval_every": 50}
    result = {"plan": plan, "bound": ea.bound({ea.key(0, "off"): {"trials": [*peers, bad]}}, plan)}
    assert [s["seed"] for s in result["bound"]["seeds"]] == [0]  # seed 1 has no record: left out
    text = es.bound_section(result)
    assert text.startswith(es.BOUND_BEGIN) and text.rstrip().endswith(es.BOUND_END)
    assert "| 0 | 50 |" in text and "| 0 | 0 of 1 |" in text and "seed 0: " in text and "--phases bound --seeds 0" in text
