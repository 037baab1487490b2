"""The warm-start benchmark (benchmarks.warm_start, benchmarks.analysis.warm_start; issue 19): hypervolume
over trials, when the warm study reaches the cold one, the targets, the import of a saved source study.
Synthetic records only."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import warm_start as ws
from benchmarks.analysis import warm_start as wa
from benchmarks.harness.phases import ExperimentError

ROOT = Path(__file__).resolve().parents[1]


def trial(number: int, metric: float | None, fraction: float, source: str = "gp", state: str = "completed") -> dict:
    return {
        "id": 1000 + number,
        "number": number,
        "state": state,
        "source": source,
        "label": None,
        "config": {"serial_adapter": {"size": 2 + number}},
        "metric": metric,
        "peft_params": 10 * (number + 1),
        "param_fraction": fraction,
        "metrics": {"f1": metric} if metric is not None else None,
        "extra": None,
    }


def record(study_id: int, trials: list[dict]) -> dict:
    from autopeft.pareto import study_front

    done = [t for t in trials if t["state"] == "completed"]
    idx, _ = study_front([t["metric"] for t in done], [t["param_fraction"] for t in done])
    return {"id": study_id, "trials": trials, "pareto": {"data": [done[i] for i in idx]}, "finished": "x"}


def test_reach_and_values_after_k_trials() -> None:
    curve = [0.0, 1.0, 1.0, 2.5, 3.0]
    assert wa.at(curve, 4) == 2.5 and wa.at(curve, 30) == 3.0 and wa.at([], 3) == 0.0
    assert wa.trials_to_reach(curve, 2.5) == 4 and wa.trials_to_reach(curve, 3.5) is None
    assert wa.trials_to_reach(curve, 0.0) == 1
    assert wa.mean_curve([[1.0, 3.0, 5.0], [3.0, 5.0]]) == [2.0, 4.0]


def test_hypervolume_curve_counts_only_completed_trials_by_number() -> None:
    trials = [trial(1, 0.8, 0.01), trial(0, None, 0.01, state="failed"), trial(2, 0.7, 0.001)]
    curve = wa.hypervolume_curve(trials)
    assert len(curve) == 3 and curve[0] == 0.0 and 0 < curve[1] < curve[2]


def _pair(seed: int, warm_good: bool) -> dict[str, dict]:
    """A cold study improving slowly over 30 trials; a warm one whose first trials (warm starts) are good."""
    cold = [trial(i, 0.5 + 0.01 * i, 0.01) for i in range(30)]
    if warm_good:
        warm = [trial(i, 0.85, 0.001 * (i + 1), source="warm_start") for i in range(3)]
        warm += [trial(i, 0.6, 0.05) for i in range(3, 30)]
    else:
        warm = [trial(i, 0.4 + 0.01 * i, 0.01) for i in range(30)]
    return {wa.key(seed, "cold"): record(10 + seed, cold), wa.key(seed, "warm"): record(20 + seed, warm)}


def test_a_warm_study_that_starts_on_the_front_meets_both_targets() -> None:
    records = _pair(0, True) | _pair(1, True)
    result = wa.analyse(records, [0, 1, 2])  # seed 2 has no records yet: left out
    assert [r["seed"] for r in result["seeds"]] == [0, 1]
    row = result["seeds"][0]
    assert row["warm_reaches_at"] == 1 and row["warm_start_trials"] == 3 and row["warm_start_on_front"] >= 1
    assert row["cold_at_budget"] == row["cold"]["final"]
    assert [t["met"] for t in result["targets"]] == [True, True]
    assert result["mean"]["warm_reaches_at"] == 1


def test_a_warm_study_that_never_catches_up_fails_both_targets() -> None:
    result = wa.analyse(_pair(0, False), [0])
    assert result["seeds"][0]["warm_reaches_at"] is None
    assert [t["met"] for t in result["targets"]] == [False, False]
    assert "never" in result["targets"][0]["detail"]
    assert wa.analyse({}, [0])["targets"] == []


def test_each_target_has_its_own_section_figures_and_command(tmp_path) -> None:
    plan = {
        "trials": 30,
        "n_initial": 8,
        "source_file": None,
        "target_training": {"max_steps": 300, "batch_size": 16, "max_length": 128, "max_search_examples": 500},
    }
    meta = {"device": "CPU: test", "cpu_count": 2, "versions": {"torch": "2"}, "started": "a", "finished": "b"}
    analysis = wa.analyse(_pair(0, True), [0], majority=0.5)
    doc = tmp_path / "page.md"
    doc.write_text(f"# Page\n\nbefore\n\n{ws.BEGIN}\nnot run yet\n{ws.END}\n\nafter\n")
    for name in (ws.DEFAULT_TARGET, "sst2-sample"):
        target = {"name": name, "task": "sst2", "label": ws.TARGETS[name]["label"]}
        text = ws.section({"plan": plan | {"target": target}, "meta": meta, "source": {"id": 1}, "analysis": analysis})
        begin, end = ws.markers(name)
        assert text.startswith(begin) and text.rstrip().endswith(end)
        assert "| 0 |" in text and "| yes |" in text and "300 steps" in text
        assert text.count("| mean curves |") == 2 and "above the majority class" in text
        assert ws.command(name) in text and ws.published(name)[0].name in text
        ws.write_section(doc, text, name)
    written = doc.read_text()
    assert "not run yet" not in written and "before" in written and "after" in written
    assert written.count(ws.BEGIN) == 1 and written.count(ws.markers("sst2-sample")[0]) == 1
    # the default target keeps the published names; another one never overwrites them
    assert ws.published(ws.DEFAULT_TARGET)[0].name == "warm_start.json"
    assert ws.published("sst2-sample")[0].name == "warm_start-sst2-sample.json"
    assert "--target sst2-sample --out runs/warm_start-sst2-sample" in ws.command("sst2-sample")


def test_import_body_holds_the_saved_completed_configurations() -> None:
    saved = {
        "body": {"name": "sst2 gp", "task": {"name": "sst2", "data_dir": "/d"}, "model": None, "space": "autopeft",
                 "training": {"max_steps": 200}, "seed": 0},
        "trials": [trial(0, 0.8, 0.01), trial(1, None, 0.02, state="failed"), trial(2, 0.7, 0.001)],
    }  # fmt: skip
    body = ws.import_body(saved, "/x/study-sst2.json")
    assert body["max_trials"] == 2 and [b["label"] for b in body["baselines"]] == ["#0", "#2"]
    assert body["task"] == {"name": "sst2", "data_dir": "/d"} and "study-sst2.json" in body["name"]
    with pytest.raises(ExperimentError, match="no completed trial"):
        ws.import_body({"body": saved["body"], "trials": []}, "/x/empty.json")


def test_the_plan_is_the_cpu_experiment_with_the_second_task_at_its_own_budget() -> None:
    fixtures = str(ROOT / "tests" / "fixtures" / "glue")
    plan = ws.make_plan(ws.parse_args(["--out", "/tmp/ws-plan", "--data", fixtures]))
    assert plan["trials"] == 30 and plan["study_seeds"] == [0, 1, 2] and plan["n_initial"] == 8
    assert plan["training"]["max_steps"] == 200 and plan["training"]["max_length"] == 64  # the source's budget
    low = plan["target_training"]  # the CPU default: SST-2, low-resource, another split
    assert plan["target"]["task"] == "sst2" and low["max_steps"] == 100 and low["max_length"] == 64
    assert low["max_train_examples"] == 1000 and low["split_seed"] == 1 and low["max_search_examples"] == 500
    body = ws.target_body(plan, 1, "warm", 7)
    assert body["warm_start"] == {"studies": [7]} and body["task"]["name"] == "sst2" and body["seed"] == 1
    assert body["training"]["split_seed"] == 1 and body["training"]["seed"] == 1
    assert "warm_start" not in ws.target_body(plan, 1, "cold", 7)
    mrpc = ws.make_plan(ws.parse_args(["--target", "mrpc", "--out", "/tmp/ws-plan-mrpc", "--data", fixtures]))
    assert mrpc["target"]["task"] == "mrpc" and ws.target_body(mrpc, 0, "cold", 7)["task"]["name"] == "mrpc"
    assert mrpc["target_training"]["max_steps"] == 300 and mrpc["target_training"]["max_length"] == 128
    sample = ws.make_plan(ws.parse_args(["--target", "sst2-sample", "--out", "/tmp/ws-plan-s", "--data", fixtures]))
    same = sample["target_training"]  # the source's budget, another sample and search split
    assert {k: same[k] for k in ("max_steps", "max_length", "batch_size")} == {
        k: plan["training"][k] for k in ("max_steps", "max_length", "batch_size")
    }
    assert same["max_train_examples"] == 4000 and same["split_seed"] == 1
    dry = ws.make_plan(ws.parse_args(["--dry-run", "--out", "/tmp/ws-plan-dry"]))
    assert dry["trials"] == 6 and dry["study_seeds"] == [0]
    assert dry["target_training"] == {**dry["training"], "split_seed": 1}


def test_the_majority_class_is_scored_on_the_studies_search_split(tmp_path) -> None:
    folder = tmp_path / "SST-2"
    folder.mkdir()
    # 80 rows: label 1 in the first 60, so 1 is the majority of any large training side
    rows = "".join(f"sentence number {i}\t{int(i < 60)}\n" for i in range(80))
    (folder / "train.tsv").write_text("sentence\tlabel\n" + rows)
    (folder / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    training = {"search_split": 0.25, "split_seed": 4}
    from autopeft.tasks import read_labeled, resolve_data_dir, resolve_task
    from autopeft.tasks.data import TaskData

    spec = resolve_task("sst2", str(tmp_path))
    labels = read_labeled(spec, resolve_data_dir(spec) / "train.tsv", spec.labels)
    split = TaskData(spec, folder, spec.labels, labels, tokenizer=None).split(0.25, 4)
    expected = sum(labels["labels"][int(i)] == 1 for i in split.search) / len(split.search)
    assert wa.majority_search_metric("sst2", str(tmp_path), training) == pytest.approx(expected)
    assert expected != pytest.approx(0.75)  # the search split's own share, not the file's


def test_the_ranking_counts_cold_scores_that_clear_the_majority_class() -> None:
    records = _pair(0, True) | _pair(1, False)
    result = wa.analyse(records, [0, 1], majority=0.6)
    r = result["ranking"]
    assert r["trials"] == 60 and r["min"] == 0.5 and r["max"] == pytest.approx(0.79)
    assert r["clear_by_2_points"] == sum(0.5 + 0.01 * i >= 0.62 for i in range(30)) * 2
    assert "0.600" in ws.ranking_text(r) and ws.ranking_text({"trials": 0}) == "No cold trial completed."
    assert "majority" not in ws.ranking_text(wa.ranking([records[wa.key(0, "cold")]], None))


def test_the_hypervolume_above_the_majority_class_ignores_what_does_not_beat_it() -> None:
    cold = [trial(0, 0.55, 1e-7), trial(1, 0.70, 0.01), trial(2, 0.80, 0.05)]  # a head-only-like majority trial first
    warm = [trial(0, 0.70, 0.01), trial(1, 0.80, 0.05)]
    records = {wa.key(0, "cold"): record(1, cold), wa.key(0, "warm"): record(2, warm)}
    row = wa.analyse(records, [0], budget=3, majority=0.6)["seeds"][0]
    # on the study's hypervolume the majority-level trial at the smallest size puts cold ahead
    assert row["cold"]["final"] > row["warm"]["final"] and row["warm_reaches_at"] is None
    above = row["above_majority"]
    assert above["cold_curve"][0] == 0.0 and above["cold_final"] == pytest.approx(above["warm_final"])
    assert above["warm_reaches_at"] == 2


@pytest.mark.slow
def test_the_source_ranking_is_positive_when_the_new_results_follow_the_source() -> None:
    import json

    saved = json.loads((ROOT / "benchmarks" / "results" / "cpu" / "study-sst2-autopeft-gp.json").read_text())
    configs = [t["config"] for t in wa.completed(saved["trials"])][:8]

    def study(metrics: list[float]) -> dict:
        return {"trials": [dict(trial(i, m, 0.001), config=c) for i, (m, c) in enumerate(zip(metrics, configs))]}

    source = {"body": saved["body"], **study([0.5 + 0.04 * i for i in range(8)])}
    same = study([0.6 + 0.03 * i for i in range(8)])
    reverse = study([0.9 - 0.03 * i for i in range(8)])
    taus = wa.source_ranking(source, {"same": same, "reverse": reverse, "few": study([0.7])})
    assert taus["same"] > 0.5 and taus["reverse"] < -0.5 and taus["few"] is None
    assert wa.source_ranking({**source, "trials": source["trials"][:2]}, {"same": same}) == {}
    analysis = {"seeds": [{"seed": 0}], "source_ranking": {wa.key(0, "cold"): 0.4, wa.key(0, "warm"): None}}
    assert ws.source_ranking_text(analysis).endswith("by seed): cold +0.40.")


@pytest.mark.slow
def test_the_report_of_the_published_records_gives_the_published_figures(tmp_path) -> None:
    """What a fresh checkout holds (the sst2-low records, the source file) reports again, with the
    same hypervolumes, through the command's own report phase."""
    import json
    import shutil

    out = tmp_path / "out"
    (out / "studies").mkdir(parents=True)
    published = json.loads((ROOT / "benchmarks" / "results" / "warm_start.json").read_text())
    for path in (ROOT / "benchmarks" / "results" / "warm_start" / "sst2-low").glob("*.json"):
        shutil.copy(path, out / "studies" / path.name)
    (out / "ws-meta.json").write_text(json.dumps(published["meta"]))
    (out / "ws-source.json").write_text(json.dumps(published["source"]))
    fixtures = str(ROOT / "tests" / "fixtures" / "glue")  # only the majority class is scored on them
    argv = ["--phases", "report", "--out", str(out), "--data", fixtures, "--publish", str(tmp_path / "ws.json")]
    argv += ["--doc", str(tmp_path / "page.md"), "--source-study-file", str(ROOT / ws.SOURCE_FILE)]
    ws.run_phases(ws.parse_args(argv), None)
    again = json.loads((tmp_path / "ws.json").read_text())["analysis"]
    assert [t["detail"] for t in again["targets"]] == [t["detail"] for t in published["analysis"]["targets"]]
    assert again["source_ranking"] == pytest.approx(published["analysis"]["source_ranking"], abs=0.05)
    page = (tmp_path / "page.md").read_text()
    assert page.count(ws.BEGIN) == 1 and "cold +0." in page
    # where and when they ran, from the records (not from the machine that reports them)
    assert "on **CPU: AMD EPYC** (2 cores), 2026-11-30T14:53:45+00:00 to 2026-11-30T16:04:45+00:00;" in page


def test_seeds_resumed_on_another_machine_are_reported_with_their_own_machine() -> None:
    def record(seed: int, arm: str, device: str | None, created: str, finished: str) -> dict:
        rec = {"key": wa.key(seed, arm), "study": {"created_at": created}, "finished": finished}
        return rec | ({"machine": {"device": device, "cpu_count": 2}} if device else {})

    records = {
        r["key"]: r
        for r in [
            record(0, "cold", None, "2026-11-30T18:19:12.85Z", "2026-11-30T19:16:50+00:00"),  # before records named it
            record(0, "warm", None, "2026-11-30T18:19:13.01Z", "2026-11-30T19:16:50+00:00"),
            record(1, "cold", "CPU: AMD EPYC", "2026-11-30T19:16:50.9Z", "2026-11-30T20:14:10+00:00"),
            record(2, "warm", "CPU: Intel Xeon", "2026-11-30T22:30:10.8Z", "2026-11-30T23:02:00+00:00"),
            record(2, "cold", "CPU: Intel Xeon", "2026-11-30T22:30:10.9Z", "2026-11-30T23:01:08+00:00"),
        ]
    }
    meta = {"device": "CPU: AMD EPYC", "cpu_count": 2}
    runs = wa.machine_runs(records, meta)
    assert [(r["device"], r["seeds"], r["started"], r["finished"]) for r in runs] == [
        ("CPU: AMD EPYC", [0, 1], "2026-11-30T18:19:12+00:00", "2026-11-30T20:14:10+00:00"),
        ("CPU: Intel Xeon", [2], "2026-11-30T22:30:10+00:00", "2026-11-30T23:02:00+00:00"),
    ]
    assert ws.runs_text({"runs": runs}) == (
        "**CPU: AMD EPYC** (2 cores) for seeds 0, 1, 2026-11-30T18:19:12+00:00 to 2026-11-30T20:14:10+00:00, "
        "and on **CPU: Intel Xeon** (2 cores) for seed 2, 2026-11-30T22:30:10+00:00 to 2026-11-30T23:02:00+00:00"
    )
    one = wa.machine_runs({k: v for k, v in records.items() if "seed2" not in k}, meta)
    assert ws.runs_text({"runs": one}) == "**CPU: AMD EPYC** (2 cores), 2026-11-30T18:19:12+00:00 to 2026-11-30T20:14:10+00:00"
