"""benchmarks.methods and benchmarks.analysis.methods (issue 32): the studies it runs and how it reports
them, on synthetic records.

The report's contract (summary.json's ``studies`` with ``space``, ``method``, ``seed``, ``completed`` and the
hypervolumes; the docs section) is read by checks, so its names are tested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import methods as mb
from benchmarks.analysis import methods as ma
from benchmarks.experiment.report import CPU_BEGIN, CPU_END
from benchmarks.harness.analysis import config_key
from benchmarks.harness.records import restore_records, save_json

ROOT = Path(__file__).resolve().parents[1]

FIXTURES = str(ROOT / "tests" / "fixtures" / "glue")


def trial(number: int, metric: float | None, fraction: float, config: dict | None = None, dev: float | None = None,
          source: str = "sobol", state: str = "completed") -> dict:  # fmt: skip
    metrics = {"search_accuracy": metric} | ({"dev_accuracy": dev} if dev is not None else {})
    return {
        "id": 1000 + number,
        "number": number,
        "state": state,
        "source": source,
        "config": {"serial_adapter": {"size": 2 + number}} if config is None else config,
        "metric": metric,
        "param_fraction": fraction,
        "metrics": metrics if metric is not None else None,
        "duration_s": 60.0 + number,
        "extra": {"eval_seconds": 2.0 + (dev is not None) * 6.0},
    }


def record(k: str, trials: list[dict], **extra) -> dict:
    from autopeft.pareto import study_front

    done = [t for t in trials if t["state"] == "completed"]
    idx, _ = study_front([t["metric"] for t in done], [t["param_fraction"] for t in done])
    return {
        "key": k,
        "id": 7,
        "batch": "b",
        "body": {"training": {"seed": ma.parse_key(k)[2]}},
        "study": {
            "counts": {"completed": len(done), "failed": len(trials) - len(done)},
            "model_shape": {"n_layers": 6},
            "created_at": "2026-12-07T18:00:00Z",
        },
        "trials": trials,
        "pareto": {"data": [done[i] for i in idx]},
        "machine": {"device": "CPU: test", "cpu_count": 2},
        "finished": "2026-12-07T19:00:00+00:00",
        "batch_wall_seconds": 100.0,
    } | extra


def study(k: str, lift: float, n: int = 30) -> dict:
    """A study of ``n`` trials: head-only first, then configurations whose metric grows by ``lift`` a trial."""
    trials = [trial(0, 0.5, 0.0, config={}, dev=0.5)]
    trials += [trial(i, 0.6 + lift * i, 0.001 * (i % 7 + 1), dev=0.55 + lift * i, source="gp") for i in range(1, n)]
    return record(k, trials)


MAJORITY = {"search": 0.5, "dev": 0.5}


def test_the_studies_are_the_issues_and_seed_0_of_gp_and_sobol_is_reused() -> None:
    assert len(ma.ALL_KEYS) == 3 * 3 + 2 * 3
    assert set(mb.REUSED) == {"autopeft-gp-seed0", "autopeft-sobol-seed0"}
    batched = [k for batch in mb.BATCHES.values() for k in batch]
    assert sorted(batched + list(mb.REUSED)) == sorted(ma.ALL_KEYS) and len(set(batched)) == len(batched)
    assert ma.parse_key("full-tpe-seed2") == ("full", "tpe", 2)
    first = mb.batches_of(["autopeft-gp-seed1", "autopeft-sobol-seed1", "autopeft-gp-seed0"])
    assert first == {"autopeft-seed1": ["autopeft-gp-seed1", "autopeft-sobol-seed1"]}


def test_a_study_body_is_the_cpu_experiments_with_the_seed_and_dev_scored() -> None:
    plan = mb.make_plan(mb.parse_args(["--out", "/tmp/methods-plan", "--data", FIXTURES]))
    assert plan["trials"] == 30 and plan["workers"] == 2 and plan["n_initial"] == 8
    t = plan["training"]
    assert (t["max_steps"], t["batch_size"], t["max_length"], t["learning_rate"]) == (200, 16, 64, 1e-3)
    tpe = mb.study_body(plan, "full-tpe-seed2")
    assert tpe["space"] == "full" and tpe["optimizer"] == {"method": "tpe", "n_initial": 8} and tpe["seed"] == 2
    assert tpe["training"]["seed"] == 2 and tpe["training"]["evaluate_dev"] is True
    assert mb.study_body(plan, "autopeft-sobol-seed1")["optimizer"] == {"method": "sobol"}
    with pytest.raises(SystemExit):
        mb.parse_args(["--studies", "autopeft-nsga2-seed0"])


def test_above_the_majority_class_leaves_the_head_only_point_out() -> None:
    trials = [trial(0, 0.9, 0.0, config={}), trial(1, 0.7, 0.01), trial(2, 0.4, 0.001)]
    plain, above = ma.search_curve(trials), ma.above_majority_curve(trials, 0.5)
    assert plain[0] > 0 and above[0] == 0.0  # head-only: the whole plain term, nothing above the majority
    assert above[1] == pytest.approx((0.7 - 0.5) * 2) and above[2] == above[1]  # 0.4 is below the majority
    assert len(above) == len(plain) == 3


def test_a_study_row_has_the_contract_fields_and_the_front_on_dev() -> None:
    row = ma.study_row("autopeft-gp-seed1", study("autopeft-gp-seed1", 0.005), MAJORITY, "accuracy")
    for name in ("space", "method", "seed", "completed", *ma.MEASURES):
        assert name in row, name
    assert (row["space"], row["method"], row["seed"], row["completed"]) == ("autopeft", "gp", 1, 30)
    assert row["search_hypervolume_10"] < row["search_hypervolume_20"] < row["search_hypervolume_30"]
    assert row["dev_hypervolume_30"] > row["dev_above_majority_hypervolume_30"] > 0
    assert {p["number"] for p in row["front"]} >= {0}  # the head-only point is on the front, with its dev score
    short = ma.study_row("full-tpe-seed0", study("full-tpe-seed0", 0.005, n=12), MAJORITY, "accuracy")
    assert short["search_hypervolume_10"] is not None and short["search_hypervolume_20"] is None
    assert short["dev_hypervolume_30"] is None  # not at 30 trials yet
    assert 0 < row["scoring_share_median"] < 1


def test_a_reused_front_takes_its_dev_scores_from_the_retraining() -> None:
    rec = study("autopeft-sobol-seed0", 0.004)
    for t in rec["trials"]:
        t["metrics"] = {"search_accuracy": t["metric"]}  # the CPU experiment's studies did not score dev
    assert ma.front_dev(rec, "accuracy") is None
    retrained = {config_key(t["config"], 6): 0.6 for t in rec["pareto"]["data"]}
    front = ma.front_dev(rec, "accuracy", retrained)
    assert front is not None and {p["dev"] for p in front} == {0.6}


def _rows(lifts: dict[str, float]) -> list[dict]:
    return [ma.study_row(k, study(k, lift), MAJORITY, "accuracy") for k, lift in lifts.items()]


def test_gp_against_each_peer_counts_seeds_ahead_and_behind() -> None:
    lifts = {ma.key("autopeft", m, s): lift for s in ma.SEEDS for m, lift in (("gp", 0.006), ("sobol", 0.004))}
    lifts[ma.key("autopeft", "tpe", 0)] = 0.009  # tpe ahead of gp in seed 0, behind in seed 1
    lifts[ma.key("autopeft", "tpe", 1)] = 0.001
    result = ma.analyse(_rows(lifts))
    by_peer = {(c["space"], c["peer"]): c for c in result["comparisons"]}
    sobol, tpe = by_peer[("autopeft", "sobol")], by_peer[("autopeft", "tpe")]
    assert sobol["seeds"] == [0, 1, 2] and sobol["search_hypervolume_30"]["gp_ahead"] == 3
    assert set(sobol["search_hypervolume_30"]["differences"]) == {"0", "1", "2"}
    assert tpe["seeds"] == [0, 1]
    assert (tpe["search_hypervolume_30"]["gp_ahead"], tpe["search_hypervolume_30"]["gp_behind"]) == (1, 1)
    means = {(m["space"], m["method"]): m for m in result["methods"]}
    gp = means[("autopeft", "gp")]["search_hypervolume_30"]
    assert gp["values"] and gp["std"] == pytest.approx(0.0) and means[("full", "gp")]["seeds"] == []
    targets = result["targets"]
    assert [t["met"] for t in targets] == [None, None, False]  # tpe lacks seed 2, full is not run; 10 < 30
    lifts[ma.key("autopeft", "tpe", 2)] = 0.001
    lifts |= {ma.key("full", m, s): lift for s in ma.SEEDS for m, lift in (("gp", 0.002), ("tpe", 0.003))}
    targets = ma.analyse(_rows(lifts))["targets"]
    assert [t["met"] for t in targets] == [True, False, False] and "gp" in targets[1]["detail"]


def test_the_report_writes_summary_plots_and_its_section_after_the_cpu_results(tmp_path) -> None:
    out, publish = tmp_path / "run", tmp_path / "published"
    for k, lift in {"autopeft-gp-seed1": 0.006, "autopeft-sobol-seed1": 0.004, "full-tpe-seed0": 0.003}.items():
        save_json(out / "studies" / f"{k}.json", study(k, lift))
    save_json(out / "methods-meta.json", {"device": "CPU: test", "cpu_count": 2, "started": "s"})
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\n\n{CPU_BEGIN}\ncpu part\n{CPU_END}\n\n## GPU\n")
    plan = mb.make_plan(mb.parse_args(["--out", str(out), "--data", FIXTURES]))
    mb.report(plan, out, publish, doc, dry=False)
    summary = json.loads((publish / "summary.json").read_text())
    assert [(s["space"], s["method"], s["seed"], s["completed"]) for s in summary["studies"]] == [
        ("autopeft", "gp", 1, 30), ("autopeft", "sobol", 1, 30), ("full", "tpe", 0, 30)
    ]  # fmt: skip
    assert all(s["search_hypervolume_30"] > 0 and s["dev_hypervolume_30"] > 0 for s in summary["studies"])
    assert len(summary["missing"]) == 12
    assert {p.name for p in publish.glob("*.png")} == {
        "hypervolume-autopeft.png", "hypervolume-autopeft-above-majority.png",
        "hypervolume-full.png", "hypervolume-full-above-majority.png",
    }  # fmt: skip
    text = doc.read_text()
    assert text.index(CPU_END) < text.index(mb.BEGIN) < text.index(mb.END) < text.index("## GPU")
    assert "## Methods on real data" in text and "| autopeft | sobol | search 30 | - | +" in text
    assert "3 of 15 studies finished" in text and "hypervolume-full.png" in text
    mb.report(plan, out, publish, doc, dry=False)  # again: the section is replaced, not added
    assert doc.read_text().count(mb.BEGIN) == 1


def test_an_unfinished_study_is_reported_as_it_stood_and_never_restored_as_finished(tmp_path) -> None:
    out, publish = tmp_path / "run", tmp_path / "published"
    save_json(out / "studies" / "autopeft-sobol-seed1.json", study("autopeft-sobol-seed1", 0.004))
    stood = study("autopeft-gp-seed1", 0.006, n=30)["trials"]
    stood[14] = {**stood[14], "state": "running", "metric": None}  # trial 14 still open: 15 and on wait
    settled = mb.settled_prefix(list(reversed(stood)))
    assert [t["number"] for t in settled] == list(range(14))
    save_json(out / mb.PARTIAL / "autopeft-gp-seed1.json", record("autopeft-gp-seed1", settled, partial=True))
    save_json(out / "methods-meta.json", {"device": "CPU: test", "cpu_count": 2, "started": "s"})
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\n\n{CPU_BEGIN}\ncpu part\n{CPU_END}\n")
    plan = mb.make_plan(mb.parse_args(["--out", str(out), "--data", FIXTURES]))
    mb.report(plan, out, publish, doc, dry=False)
    summary = json.loads((publish / "summary.json").read_text())
    gp = next(s for s in summary["studies"] if s["method"] == "gp")
    assert gp["partial"] is True and gp["trials"] == 14
    assert gp["search_hypervolume_10"] > 0 and gp["search_hypervolume_20"] is None
    assert "autopeft-gp-seed1" in summary["missing"] and "autopeft-sobol-seed1" not in summary["missing"]
    text = doc.read_text()
    assert "1 of 15 studies finished" in text and "**Partial**" in text and "`autopeft-gp-seed1` (14 settled" in text
    assert "| autopeft | gp | 1 (unfinished) |" in text
    # published beside the finished records, a partial record is not restored as a finished study
    save_json(publish / mb.PARTIAL / "autopeft-gp-seed1.json", record("autopeft-gp-seed1", settled, partial=True))
    bodies = {"autopeft-gp-seed1": {"training": {"seed": 1}}}
    assert restore_records(publish, tmp_path / "fresh", bodies) == []
    assert not (tmp_path / "fresh" / "studies" / "autopeft-gp-seed1.json").exists()
