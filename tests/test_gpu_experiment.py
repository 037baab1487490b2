"""The pure parts of the results experiment (benchmarks.experiment, issue 9), of the harness and of
benchmarks/plots.py: front-point choice, target checks, the report text and its refusal to present a
dry run as results, plots.

Fast: no training, no server; synthetic results only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import plots
from benchmarks.experiment import analysis as figures
from benchmarks.experiment import phases as experiment_phases
from benchmarks.experiment import plan as experiment_plan
from benchmarks.experiment import report
from benchmarks.harness import analysis, phases, records, reference, services

ROOT = Path(__file__).resolve().parents[1]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIXTURE_GLUE = ROOT / "tests" / "fixtures" / "glue"


# -- choosing the front points to transfer -----------------------------------------------------------


def test_nearest_front_points_picks_the_closest_in_log10_fraction() -> None:
    front = [
        {"param_fraction": 0.0003, "metric": 0.60},
        {"param_fraction": 0.0008, "metric": 0.62},  # log10 distance to 0.1%: 0.097 -> chosen
        {"param_fraction": 0.0014, "metric": 0.64},  # 0.146
        {"param_fraction": 0.004, "metric": 0.66},
        {"param_fraction": 0.02, "metric": 0.70},  # distance to 1%: 0.301
        {"param_fraction": 0.006, "metric": 0.68},  # distance to 1%: 0.222 -> chosen
    ]
    assert figures.nearest_front_points(front, (0.001, 0.01)) == [1, 5]


def test_nearest_front_points_is_log_not_linear() -> None:
    # linear distance to 1%: 0.004 vs 0.006 (first is nearer); log10 distance: 0.398 vs 0.204 (second is nearer)
    front = [{"param_fraction": 0.006, "metric": 0.5}, {"param_fraction": 0.016, "metric": 0.5}]
    assert figures.nearest_front_points(front, (0.01,)) == [1]


def test_nearest_front_points_breaks_ties_by_metric_and_handles_zero() -> None:
    front = [
        {"param_fraction": 0.0, "metric": 0.9},  # floored at 1e-6
        {"param_fraction": 0.001 / 2, "metric": 0.6},
        {"param_fraction": 0.001 * 2, "metric": 0.7},  # same log distance, better metric
    ]
    assert figures.nearest_front_points(front, (0.001, 1e-6)) == [2, 0]
    with pytest.raises(ValueError):
        figures.nearest_front_points([], (0.001,))


def test_combined_front_of_two_studies_keeps_only_non_dominated_completed_trials() -> None:
    a = {"key": "a", "trials": [_trial(0, 0.70, 0.001), _trial(1, 0.60, 0.01), _trial(2, None, 0.0001, "failed")]}
    b = {"key": "b", "trials": [_trial(0, 0.75, 0.01), _trial(1, 0.50, 0.0005)]}
    front = figures.combined_front([a, b])
    got = [(t["study_key"], t["number"]) for t in front]
    # a#1 (0.60 at 1%) is dominated by b#0 (0.75 at 1%); the failed trial is not a result
    assert got == [("b", 0), ("a", 0), ("b", 1)]


# -- the target checks ----------------------------------------------------------------------------------


def _baselines8() -> list[dict]:
    names = ["full", "lora", "adapter", "prefix", "bitfit", "fish", "parallel", "adamix"]
    fractions = [1.0, 0.00325, 0.0131, 0.00325, 0.00112, 0.005, 0.0131, 0.0524]
    devs = [0.70, 0.66, 0.67, 0.60, 0.62, 0.64, 0.66, 0.68]
    return [{"label": n, "param_fraction": f, "dev_mean": d} for n, f, d in zip(names, fractions, devs)]


def test_dominance_needs_at_least_as_good_and_strictly_fewer_parameters() -> None:
    configs = [
        {
            "label": "c0",
            "param_fraction": 0.001,
            "dev_mean": 0.62,
        },  # beats bitfit (0.62 at 0.112%): equal dev, fewer params
        {"label": "c1", "param_fraction": 0.00325, "dev_mean": 0.99},  # same fraction as lora/prefix: not fewer
        {"label": "c2", "param_fraction": 0.004, "dev_mean": 0.665},
    ]
    dom = {d["label"]: d["beaten_by"] for d in analysis.dominance(configs, _baselines8())}
    assert dom["bitfit"] == ["c0"]
    assert dom["lora"] == []  # c1 ties on parameters, c0 scores lower, c2 is larger
    assert dom["prefix"] == ["c0"]  # c1 ties on parameters: not fewer
    assert dom["fish"] == ["c1", "c2"]  # 0.665 >= 0.64 with 0.4% < 0.5%
    assert dom["adapter"] == ["c1"] and dom["parallel"] == ["c1", "c2"]  # 0.665 < 0.67 but >= 0.66
    assert dom["full"] == ["c1"] and dom["adamix"] == ["c1"]


def test_check_targets_counts_baselines_and_uses_seed_means() -> None:
    # a retrained configuration's dev mean over three seeds decides, not its best seed
    rows = [
        {
            "label": "c0",
            "state": "completed",
            "seed": s,
            "config": {},
            "param_fraction": 0.002,
            "metric_name": "accuracy",
            "search": 0.7,
            "dev": {"accuracy": d},
        }
        for s, d in zip((0, 1, 2), (0.72, 0.60, 0.60))
    ] + [
        {
            "label": "c0",
            "state": "failed",
            "seed": 3,
            "config": {},
            "param_fraction": None,
            "metric_name": None,
            "search": None,
            "dev": {},
        }
    ]
    (agg,) = analysis.aggregate(rows)
    assert agg["seeds"] == [0, 1, 2] and agg["dev"]["accuracy"] == [0.72, 0.60, 0.60]
    mean = analysis.mean_std(agg["dev"]["accuracy"])[0]
    assert mean == pytest.approx(0.64)
    configs = [{"label": "c0", "param_fraction": 0.002, "dev_mean": mean}]
    dom = analysis.dominance(configs, _baselines8())
    # with its best seed (0.72) c0 would beat all but bitfit; with the mean (0.64) only prefix and fish
    assert {d["label"] for d in dom if d["beaten_by"]} == {"prefix", "fish"}
    summary = {"dominance": dom, "full_dev_mean": 0.70, "near_full": figures.near_full(configs, 0.70)}
    checks = figures.check_targets(summary)
    assert checks[0]["met"] is False and checks[0]["detail"] == "2 of 8 baselines beaten"
    assert checks[1]["met"] is False  # 0.64 is 6 points below full fine-tuning
    assert checks[2]["met"] is None and checks[3]["met"] is None  # no studies, no throughput phase


def test_check_targets_met_when_five_baselines_beaten_and_close_to_full() -> None:
    configs = [
        {
            "label": "tiny",
            "param_fraction": 0.001,
            "dev_mean": 0.63,
        },  # beats bitfit? 0.63 >= 0.62 at 0.1% < 0.112%: yes
        {
            "label": "small",
            "param_fraction": 0.003,
            "dev_mean": 0.695,
        },  # beats lora, prefix, fish, adapter, parallel, adamix
    ]
    dom = analysis.dominance(configs, _baselines8())
    assert sum(bool(d["beaten_by"]) for d in dom) == 7  # all but full fine-tuning (0.70)
    close = figures.near_full(configs, 0.70)
    assert close == ["small"]  # within 1 point below 1%; tiny is 7 points off
    summary = {
        "dominance": dom,
        "full_dev_mean": 0.70,
        "near_full": close,
        "hypervolume": {"trials": 60, "gp": 1.5, "sobol": 1.4},
        "throughput": {"full": 100.0, "peft_median": 149.0},
    }
    met = [c["met"] for c in figures.check_targets(summary)]
    assert met == [True, True, True, False]  # 1.49x is short of 1.5x
    summary["throughput"]["peft_median"] = 150.0
    summary["hypervolume"]["sobol"] = 1.6
    assert [c["met"] for c in figures.check_targets(summary)] == [True, True, False, True]


def test_near_full_requires_under_one_percent() -> None:
    configs = [
        {"label": "big", "param_fraction": 0.01, "dev_mean": 0.80},
        {"label": "ok", "param_fraction": 0.0099, "dev_mean": 0.691},
    ]
    assert figures.near_full(configs, 0.70) == ["ok"]
    assert figures.near_full(configs, 0.702) == []


def test_summarise_gpu_samples() -> None:
    got = services.summarise_gpu_samples(["80, 1000", "garbage", "", "40, 3000", "[N/A], 5"])
    assert got["samples"] == 2 and got["utilization_mean"] == 60 and got["memory_max_mib"] == 3000
    assert services.summarise_gpu_samples([])["samples"] == 0


# -- the report ------------------------------------------------------------------------------------------


def _trial(number: int, metric: float | None, fraction: float, state: str = "completed", **extra) -> dict:
    return {
        "number": number,
        "state": state,
        "metric": metric,
        "param_fraction": fraction,
        "config": {"serial_adapter": {"size": 8 * (number + 1)}},
        "duration_s": 10.0 + number,
        "label": extra.pop("label", None),
        "extra": {"metric_name": "accuracy", "examples_per_second": 200.0, "train_seconds": 5.0, **extra},
    }


def _study(key: str, metrics: list[float]) -> dict:
    trials = [_trial(i, m, 10 ** -(1 + i % 3)) for i, m in enumerate(metrics)]
    from autopeft.pareto import study_front

    idx, hv = study_front([t["metric"] for t in trials], [t["param_fraction"] for t in trials])
    return {
        "key": key,
        "id": 1,
        "workers": 4,
        "batch_wall_seconds": 120.0,
        "gpu": {
            "samples": 10,
            "utilization_mean": 71.0,
            "utilization_median": 75.0,
            "memory_max_mib": 9000.0,
            "memory_mean_mib": 8000.0,
        },
        "study": {
            "counts": {"completed": len(trials), "failed": 0},
            "hypervolume": hv,
            "elapsed_s": 130.0,
            "model_shape": {"n_layers": 6},
        },
        "trials": trials,
        "pareto": {"count": len(idx), "data": [trials[i] for i in idx]},
        "body": {"training": {"seed": 0}, "task": {"name": "rte"}},
    }


def _results(dry_run: bool, device: str = "cuda", device_name: str = "NVIDIA H100 80GB HBM3") -> dict:
    methods = ["full", "lora", "adapter", "prefix", "bitfit", "fish", "parallel", "adamix"]
    fractions = [1.0, 0.00325, 0.0131, 0.00325, 0.00112, 0.005, 0.0131, 0.0524]
    base_trials = []
    for task, name in (("rte", "accuracy"), ("mrpc", "f1")):
        for m, f in zip(methods, fractions):
            for seed in (0, 1, 2):
                dev = {name: 0.6 + 0.01 * seed} | ({"accuracy": 0.7} if name == "f1" else {})
                base_trials.append(
                    {
                        "task": task,
                        "method": m,
                        "seed": seed,
                        "param_fraction": f,
                        "metric_name": name,
                        "dev": dev,
                        "search": {name: 0.65},
                        "examples_per_second": 100.0,
                        "wall_seconds": 30.0,
                    }
                )
    retrain_rows = [
        {
            "label": "c0",
            "state": "completed",
            "seed": s,
            "config": {"prefix": {"length": 4}},
            "param_fraction": 0.0008,
            "metric_name": "accuracy",
            "search": 0.66,
            "dev": {"accuracy": 0.64 + 0.01 * s},
        }
        for s in (0, 1, 2)
    ]
    transfer_rows = [
        {
            "label": "~0.1%",
            "state": "completed",
            "seed": s,
            "config": {"prefix": {"length": 4}},
            "param_fraction": 0.0008,
            "metric_name": "f1",
            "search": 0.8,
            "dev": {"f1": 0.81, "accuracy": 0.7},
            "task": "mrpc",
        }
        for s in (0, 1, 2)
    ]
    return {
        "meta": {
            "dry_run": dry_run,
            "device": device,
            "device_name": device_name,
            "versions": {
                "torch": "2.13.0",
                "transformers": "5",
                "datasets": "5",
                "botorch": "0.x",
                "autopeft": "0.1.0",
                "python": "3.11",
            },
            "machine": {"cpu_count": 16, "cpu": "x"},
            "plan": {
                "model": None,
                "data": "/data/glue",
                "training": {"epochs": 3, "batch_size": 32},
                "lr_preset": "standard",
                "trials": 4,
                "workers": 4,
                "seeds": [0, 1, 2],
            },
            "commands": [{"command": "python benchmarks/gpu_experiment.py --device cuda", "date": "2026-01-01"}],
            "phases": {"studies": {"seconds": 600.0}},
            "started": "2026-01-01",
        },
        "studies": {
            "rte-autopeft-gp": _study("rte-autopeft-gp", [0.60, 0.70, 0.65, 0.72]),
            "rte-autopeft-sobol": _study("rte-autopeft-sobol", [0.60, 0.61, 0.62, 0.63]),
        },
        "baselines": {"trials": base_trials},
        "retrain": {
            "configs": [
                {
                    "label": "c0",
                    "summary": "prefix len 4 @all",
                    "sources": ["rte-autopeft-gp#1"],
                    "param_fraction": 0.0008,
                    "search": 0.66,
                }
            ],
            "rows": retrain_rows,
            "aggregate": analysis.aggregate(retrain_rows),
        },
        "transfer": {
            "configs": [
                {
                    "label": "~0.1%",
                    "summary": "prefix len 4 @all",
                    "source": "rte-autopeft-gp#1",
                    "param_fraction": 0.0008,
                }
            ],
            "rows": transfer_rows,
            "aggregate": {"mrpc": analysis.aggregate(transfer_rows), "sst2": []},
        },
        "throughput": {
            "steps": 100,
            "alone": [
                {"method": "full", "label": "full fine-tuning", "param_fraction": 1.0, "examples_per_second": 400.0},
                {"method": "lora", "label": "LoRA r=8", "param_fraction": 0.00325, "examples_per_second": 700.0},
                {"method": "bitfit", "label": "BitFit", "param_fraction": 0.00112, "examples_per_second": 500.0},
            ],
            "shared": {},
        },
    }


@pytest.mark.slow
def test_summarise_and_report_text_of_a_gpu_run(tmp_path: Path) -> None:
    results = _results(dry_run=False)
    assert experiment_plan.is_real(results["meta"])
    summary = figures.summarise(results)
    # c0 (0.08%, dev mean 0.65) vs baselines (dev means 0.61): beats every baseline with more than 0.08%
    beaten = {d["label"] for d in summary["dominance"] if d["beaten_by"]}
    assert len(beaten) == 8 and summary["full_dev_mean"] == pytest.approx(0.61)
    assert summary["hypervolume"]["trials"] == 4 and summary["hypervolume"]["gp"] > summary["hypervolume"]["sobol"]
    assert summary["throughput"] == {"full": 400.0, "peft_median": 600.0}
    assert [c["met"] for c in summary["targets"]] == [True, True, True, True]
    made = report.make_plots(results, summary, tmp_path / "plots", None)
    assert set(made) == {"front-rte-autopeft-gp", "front-rte-autopeft-sobol", "front-dev", "hypervolume", "throughput"}
    links = {k: f"plots/{p.name}" for k, p in made.items()}
    text = report.body_text(results, summary, links)
    assert "NVIDIA H100 80GB HBM3" in text
    assert "| full fine-tuning | 100.000% | 0.610 ± 0.010 | 0.610 ± 0.010 / 0.700 ± 0.000 | 0.650 ± 0.000 |" in text
    assert "| c0 | prefix len 4 @all | rte-autopeft-gp#1 | 0.080% | 0.6600 | 0.650 ± 0.010 | 3 |" in text
    assert "Not dominated: none." in text
    assert "![hypervolume](plots/hypervolume.png)" in text
    assert "| LoRA r=8 | 0.325% | 700.0 | 1.75x |" in text
    assert "has not run on a GPU" not in text


@pytest.mark.parametrize(
    ("dry_run", "device", "name"),
    [(True, "cpu", "CPU: AMD EPYC"), (True, "cuda", "NVIDIA H100"), (False, "cpu", "CPU: AMD EPYC")],
)
@pytest.mark.slow
def test_report_refuses_to_present_dry_runs_and_cpu_runs_as_results(
    tmp_path: Path, dry_run: bool, device: str, name: str
) -> None:
    results = _results(dry_run=dry_run, device=device, device_name=name)
    assert not experiment_plan.is_real(results["meta"])
    out = tmp_path / "run"
    out.mkdir()
    for key in ("baselines", "retrain", "transfer", "throughput"):
        records.save_json(out / f"{key}.json", results[key])
    records.save_json(out / "meta.json", results["meta"])
    for key, record in results["studies"].items():
        records.save_json(out / "studies" / f"{key}.json", record)
    doc = report.phase_report(results["meta"]["plan"], out, tmp_path / "results.md", tmp_path / "plots")
    text = doc.read_text()
    assert text.startswith("# Results: a real search on a GPU (issue 9)\n\n**The experiment has not run on a GPU yet.")
    assert report.ONE_COMMAND in text
    head, _, labelled = text.partition("## Pipeline check")
    assert labelled, "the run's numbers must sit under the labelled section"
    assert "the numbers mean nothing" in labelled.splitlines()[0]
    assert "0.650 ± 0.010" not in head and "0.650 ± 0.010" in labelled
    assert "| full fine-tuning |" not in head
    assert len(list((tmp_path / "plots").glob("*.png"))) == 5


def test_real_report_is_not_the_placeholder(tmp_path: Path) -> None:
    results = _results(dry_run=False)
    out = tmp_path / "run"
    records.save_json(out / "meta.json", results["meta"])
    for key, record in results["studies"].items():
        records.save_json(out / "studies" / f"{key}.json", record)
    records.save_json(out / "baselines.json", results["baselines"])
    doc = report.phase_report(results["meta"]["plan"], out, tmp_path / "docs" / "results.md", tmp_path / "pub")
    text = doc.read_text()
    assert "has not run on a GPU" not in text and "Measured on NVIDIA H100 80GB HBM3" in text
    assert (tmp_path / "pub" / "study-rte-autopeft-gp.json").is_file()
    assert "](../pub/front-rte-autopeft-gp.png)" in text


# -- plots ---------------------------------------------------------------------------------------------


def test_front_steps_are_the_front_sorted_by_fraction() -> None:
    xs, ys = plots.front_steps([(0.01, 0.7), (0.001, 0.6), (0.01, 0.5), (0.1, 0.65), (0.0001, 0.55)])
    assert xs == pytest.approx([0.01, 0.1, 1.0]) and ys == [0.55, 0.6, 0.7]


def test_hypervolume_curve_counts_failed_trials_as_budget() -> None:
    trials = [_trial(0, 0.5, 0.01), _trial(1, None, 0.01, "failed"), _trial(2, 0.6, 0.001), _trial(3, 0.4, 0.1)]
    curve = plots.hypervolume_curve(list(reversed(trials)))
    assert len(curve) == 4
    assert curve[0] == pytest.approx(0.5 * 2) and curve[1] == curve[0]
    assert curve[2] == pytest.approx(0.6 * 3) and curve[3] == curve[2]  # the last trial is dominated


def test_plots_write_png_files(tmp_path: Path) -> None:
    pts = [(10 ** -(1 + i % 4), 0.5 + 0.02 * i) for i in range(12)]
    base = [
        {"label": "LoRA r=8", "param_fraction": 0.00325, "metric": 0.6, "std": 0.02},
        {"label": "full", "param_fraction": 1.0, "metric": 0.7},
    ]
    paths = [
        plots.plot_front(
            tmp_path / "a" / "front.png", pts, title="t", ylabel="acc", baselines=base, note="CPU DRY RUN"
        ),
        plots.plot_front(tmp_path / "dev.png", pts, title="t", ylabel="acc", errors=[0.01] * 12),
        plots.plot_front(tmp_path / "empty.png", [], title="t", ylabel="acc"),
        plots.plot_hypervolume(tmp_path / "hv.png", {"gp": [0, 1, 2], "sobol": [0, 0.5, 1]}, title="hv"),
        plots.plot_throughput(
            tmp_path / "tp.png",
            [{"method": "full", "label": "full", "param_fraction": 1.0, "examples_per_second": 3.0}],
            title="tp",
        ),
    ]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, p


# -- the CPU profile (issue 14) ---------------------------------------------------------------------


def _cpu_results() -> dict:
    """A CPU-profile run: SST-2 baselines, a gp and a sobol search, each front retrained on dev."""
    results = _results(dry_run=False, device="cpu", device_name="CPU: AMD EPYC")
    results["meta"]["plan"] |= {
        "profile": "cpu",
        "searches": ["sst2-autopeft-gp", "sst2-autopeft-sobol"],
        "training": {"max_steps": 200, "batch_size": 32, "max_length": 64, "seed": 0},
    }
    for t in results["baselines"]["trials"]:
        t["task"] = {"rte": "sst2"}.get(t["task"], t["task"])
    results["studies"] = {
        "sst2-autopeft-gp": _study("sst2-autopeft-gp", [0.60, 0.70, 0.65, 0.72]),
        "sst2-autopeft-sobol": _study("sst2-autopeft-sobol", [0.60, 0.61, 0.62, 0.63]),
    }
    gp_front = results["studies"]["sst2-autopeft-gp"]["pareto"]["data"]
    sobol_front = results["studies"]["sst2-autopeft-sobol"]["pareto"]["data"]
    configs, rows = [], []
    fronts = [("sst2-autopeft-gp", t, 0.64) for t in gp_front] + [("sst2-autopeft-sobol", t, 0.58) for t in sobol_front]
    for i, (key, t, dev) in enumerate(fronts):
        label = f"c{i}"
        configs.append(
            {
                "label": label,
                "summary": f"config {i}",
                "sources": [f"{key}#{t['number']}"],
                "param_fraction": t["param_fraction"],
                "search": t["metric"],
            }
        )
        rows += [
            {
                "label": label,
                "state": "completed",
                "seed": s,
                "config": t["config"],
                "param_fraction": t["param_fraction"],
                "metric_name": "accuracy",
                "search": t["metric"],
                "dev": {"accuracy": dev + 0.01 * s},
            }
            for s in (0, 1, 2)
        ]
    results["retrain"] = {"configs": configs, "rows": rows, "aggregate": analysis.aggregate(rows)}
    results["transfer"] = None
    results["throughput"] = None
    return results


def _save_run(out: Path, results: dict) -> None:
    records.save_json(out / "meta.json", results["meta"])
    for key in ("baselines", "retrain"):
        records.save_json(out / f"{key}.json", results[key])
    for key, record in results["studies"].items():
        records.save_json(out / "studies" / f"{key}.json", record)


def test_cpu_profile_plan_is_sst2_at_the_stated_budget(tmp_path: Path) -> None:
    fixtures = str(ROOT / "tests" / "fixtures" / "glue")
    args = experiment_plan.parse_args(["--profile", "cpu", "--out", str(tmp_path), "--data", fixtures])
    plan = experiment_plan.make_plan(args)
    prof = experiment_plan.profile_of(plan)
    assert prof["task"] == "sst2" and plan["device"] == "cpu" and plan["workers"] == 2 and plan["trials"] == 30
    assert plan["training"]["max_steps"] == 200 and plan["training"]["batch_size"] == 16
    assert plan["seeds"] == [0, 1, 2] and "transfer" not in args.phases and "throughput" not in args.phases
    # gp and its sobol control share the workers, so a slice of the run leaves them at equal trials
    assert prof["batches"][0] == ["sst2-autopeft-gp", "sst2-autopeft-sobol"]
    assert experiment_phases.baseline_tasks(plan) == ["sst2"]
    body = experiment_plan.search_body(plan, "sst2-autopeft-gp", "autopeft", "gp")
    assert body["task"]["name"] == "sst2" and body["optimizer"] == {"method": "gp", "n_initial": 8}
    with_transfer = experiment_plan.make_plan(
        experiment_plan.parse_args(["--profile", "cpu", "--data", fixtures, "--phases", "transfer"])
    )
    assert experiment_phases.baseline_tasks(with_transfer) == ["sst2", "mrpc"]
    narrowed = experiment_plan.profile_of(
        experiment_plan.make_plan(
            experiment_plan.parse_args(["--profile", "cpu", "--data", fixtures, "--searches", "sst2-full-gp"])
        )
    )
    assert narrowed["batches"] == [["sst2-full-gp"]] and narrowed["front_studies"] == ["sst2-full-gp"]
    with pytest.raises(phases.ExperimentError, match="unknown"):
        experiment_plan.make_plan(
            experiment_plan.parse_args(["--profile", "cpu", "--data", fixtures, "--searches", "rte-full-gp"])
        )


def test_cpu_summary_compares_each_search_front_on_dev() -> None:
    results = _cpu_results()
    assert experiment_plan.is_real(results["meta"])
    summary = figures.summarise(results)
    fronts = summary["dev_fronts"]
    assert set(fronts) == {"sst2-autopeft-gp", "sst2-autopeft-sobol"}
    hv = summary["hypervolume"]
    assert hv["equal_trials"] and hv["dev_gp"] > hv["dev_sobol"] > 0
    # only the gp studies' configurations count against the baselines (dev means 0.61; gp's front 0.65)
    assert all(d["beaten_by"] for d in summary["dominance"] if d["param_fraction"] > 0.01)
    targets = {c["target"]: c["met"] for c in summary["targets"]}
    assert any("6 of 8" in t for t in targets) and not any("samples/s" in t for t in targets)
    assert targets["gp's front has a larger SST-2 dev hypervolume than sobol's at equal trials"] is True


@pytest.mark.slow
def test_cpu_report_puts_its_section_first_and_keeps_the_gpu_page(tmp_path: Path) -> None:
    results = _cpu_results()
    out = tmp_path / "run"
    _save_run(out, results)
    doc = tmp_path / "docs" / "results.md"
    doc.parent.mkdir()
    doc.write_text(report.placeholder_text(None, None, None))
    report.phase_report(results["meta"]["plan"], out, doc, tmp_path / "pub")
    text = doc.read_text()
    assert text.startswith("# Results\n\n" + report.CPU_BEGIN + "\n## Results on CPU (issue 14)\n")
    cpu, _, gpu = text.partition(report.CPU_END)
    assert "### Baselines" in cpu and "| full fine-tuning | 100.000% | 0.610 ± 0.010 |" in cpu
    assert "](../pub/dev-front-sst2-autopeft-gp.png)" in cpu and "](../pub/hypervolume.png)" in cpu
    assert gpu.lstrip().startswith("## Results: a real search on a GPU (issue 9)") and "has not run on a GPU" in gpu
    assert "### The one command" in gpu
    summary = __import__("json").loads((tmp_path / "pub" / "summary.json").read_text())
    assert summary["device"] == "CPU: AMD EPYC" and summary["task"] == "sst2"
    assert summary["budget"]["batch_size"] == 32 and summary["transfer"] is None
    b = summary["baselines"][0]
    assert set(b) >= {"label", "param_fraction", "dev"} and set(b["dev"]) == {"mean", "std", "seeds"}
    s = {x["name"]: x for x in summary["searches"]}
    assert s["sst2-autopeft-gp"]["method"] == "gp" and s["sst2-autopeft-sobol"]["space"] == "autopeft"
    assert len(s["sst2-autopeft-gp"]["hypervolume"]) == 4
    front = s["sst2-autopeft-gp"]["front"]
    assert front and all(set(p) >= {"trial", "config", "param_fraction", "dev"} for p in front)
    assert front[0]["dev"]["mean"] == pytest.approx(0.65)
    for name in ("dev-front-sst2-autopeft-gp", "dev-front-sst2-autopeft-sobol", "hypervolume"):
        assert (tmp_path / "pub" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    # the GPU page written again (a later GPU run or its placeholder) keeps the CPU section first, once
    report.write_results_page(doc, gpu=report.placeholder_text(None, None, None))
    again = doc.read_text()
    assert again.count(report.CPU_BEGIN) == 1 and again.startswith("# Results\n\n" + report.CPU_BEGIN)
    assert again.count("## Results: a real search on a GPU") == 1
    report.write_results_page(doc, cpu="## Results on CPU (issue 14)\n\nnewer")
    assert doc.read_text().count("newer") == 1 and doc.read_text().count(report.CPU_BEGIN) == 1


@pytest.mark.slow
def test_a_dry_run_of_the_cpu_profile_is_labelled_and_publishes_nothing(tmp_path: Path) -> None:
    results = _cpu_results()
    results["meta"]["dry_run"] = True
    assert not experiment_plan.is_real(results["meta"])
    out = tmp_path / "run"
    _save_run(out, results)
    doc = report.phase_report(results["meta"]["plan"], out, None, None)
    assert doc == out / "results.md"
    assert doc.read_text().startswith("# CPU DRY RUN: MEANINGLESS NUMBERS")
    assert not (out / "plots" / "summary.json").exists()


# -- issue 14's transfer: a per-task budget, measured units restored, the transfer evaluated -----------


def test_a_transfer_task_trains_with_its_own_budget(tmp_path: Path) -> None:
    fixtures = str(ROOT / "tests" / "fixtures" / "glue")
    plan = experiment_plan.make_plan(
        experiment_plan.parse_args(["--profile", "cpu", "--data", fixtures, "--phases", "baselines", "transfer"])
    )
    assert plan["task_budgets"] == {"mrpc": {"max_steps": 300, "max_length": 128}}
    # the search task keeps the search budget; MRPC's baselines and transfer trials get its own
    sst2, mrpc = experiment_plan.task_baseline_args(plan, "sst2"), experiment_plan.task_baseline_args(plan, "mrpc")
    assert sst2 == plan["baseline_args"]
    assert mrpc[mrpc.index("--max-steps") + 1] == "300" and mrpc[mrpc.index("--max-length") + 1] == "128"
    assert mrpc[mrpc.index("--batch-size") + 1] == "16"
    body = experiment_plan.eval_body(plan, "t", "mrpc", 1, [{"label": "c0", "config": {"lora": {"rank": 8}}}])
    assert body["training"]["max_steps"] == 300 and body["training"]["max_length"] == 128
    assert body["training"]["seed"] == 1 and body["training"]["evaluate_dev"] is True
    assert experiment_plan.eval_body(plan, "t", "sst2", 1, [])["training"]["max_steps"] == 200
    flagged = experiment_plan.make_plan(
        experiment_plan.parse_args(["--profile", "cpu", "--data", fixtures, "--task-budget", "mrpc:400:96"])
    )
    assert flagged["task_budgets"] == {"mrpc": {"max_steps": 400, "max_length": 96}}
    for bad in ("mrpc:400", "qqp:400:96", "mrpc:0:96", "mrpc:x:96"):
        with pytest.raises(phases.ExperimentError, match="TASK:STEPS:LENGTH"):
            experiment_plan.make_plan(
                experiment_plan.parse_args(["--profile", "cpu", "--data", fixtures, "--task-budget", bad])
            )


def test_measured_baselines_of_a_published_file_are_not_trained_again(tmp_path: Path) -> None:
    trial = {"task": "sst2", "method": "lora", "seed": 1, "wall_seconds": 60.0}
    merged = {"complete": True, "date": "d", "learning_rates": {"lora": 1e-3}, "trials": [trial], "total_seconds": 60.0}
    records.save_json(tmp_path / "baselines.json", merged)
    units = {
        ("sst2", "lora", 1): tmp_path / "b" / "sst2-lora-seed1.json",
        ("mrpc", "lora", 1): tmp_path / "b" / "m.json",
    }
    (tmp_path / "b").mkdir()
    assert experiment_phases.restore_units(tmp_path / "baselines.json", units) == 1
    unit = records.load_json(units[("sst2", "lora", 1)])
    assert unit["complete"] and unit["trials"] == [trial] and unit["learning_rates"] == {"lora": 1e-3}
    assert not units[("mrpc", "lora", 1)].exists()
    assert experiment_phases.restore_units(tmp_path / "baselines.json", units) == 0  # an existing unit file is kept
    # an unfinished merge restores nothing (its trials may be partial)
    records.save_json(tmp_path / "partial.json", merged | {"complete": False})
    units[("sst2", "lora", 1)].unlink()
    assert experiment_phases.restore_units(tmp_path / "partial.json", units) == 0


def test_transfer_check_scores_against_the_majority_class_and_the_task_baselines() -> None:
    fixtures = str(ROOT / "tests" / "fixtures" / "glue")
    floor = reference.majority_dev_metrics("mrpc", fixtures)["f1"]

    def base(method: str, fraction: float, f1: list[float]) -> dict:
        return {
            "method": method,
            "label": reference.METHODS[method][0],
            "param_fraction": fraction,
            "metric_name": "f1",
            "dev": {"f1": f1, "accuracy": f1},
            "seeds": [0, 1],
        }

    baselines = [base("full", 1.0, [floor + 0.05, floor + 0.03]), base("lora", 0.003, [floor + 0.01, floor + 0.01])]
    transfer = {
        "aggregate": {
            "mrpc": [
                {
                    "label": "~0.1%",
                    "param_fraction": 0.001,
                    "metric_name": "f1",
                    "seeds": [0, 1],
                    "dev": {"f1": [floor + 0.02, floor + 0.02]},
                    "search": [0.8, 0.8],
                },
                {
                    "label": "~1%",
                    "param_fraction": 0.01,
                    "metric_name": "f1",
                    "seeds": [0, 1],
                    "dev": {"f1": [floor - 0.01, floor - 0.01]},
                    "search": [0.8, 0.8],
                },
            ]
        }
    }
    check = figures.transfer_check(transfer, baselines, "mrpc", floor)
    assert check["metric"] == "f1" and check["majority"] == pytest.approx(floor)
    assert check["full_margin"] == pytest.approx(0.04) and check["ranks_methods"]
    assert check["above_majority"] == ["~0.1%"]
    beaten = {d["label"]: d["beaten_by"] for d in check["dominance"]}
    # ~1% is below LoRA on F1; ~0.1% beats LoRA with fewer parameters but not full fine-tuning
    assert beaten == {reference.METHODS["full"][0]: [], reference.METHODS["lora"][0]: ["~0.1%"]}
    assert figures.transfer_check(transfer, baselines[:1], "mrpc", floor)["dominance"][0]["beaten_by"] == []
    text = report.transfer_text(
        "mrpc", {"training": {"batch_size": 16}, "task_budgets": {"mrpc": {"max_steps": 300, "max_length": 128}}}, check
    )
    assert "300 steps of batch 16, max length 128" in text and "the budget ranks methods" in text
    assert "not above the majority class" in text
    weak = figures.transfer_check(transfer, [base("full", 1.0, [floor + 0.01, floor + 0.01])], "mrpc", floor)
    assert not weak["ranks_methods"]
    assert "under the 3 points" in report.transfer_text("mrpc", {"training": {"batch_size": 16}}, weak)


def test_the_transfer_bullet_states_budget_margin_and_dominance_from_the_numbers() -> None:
    check = {
        "metric": "f1",
        "majority": 0.80,
        "full_dev_mean": 0.84,
        "full_margin": 0.04,
        "ranks_methods": True,
        "configs": [{"label": "~0.1%", "param_fraction": 0.001, "dev_mean": 0.82, "dev_std": 0.01, "seeds": [0]}],
        "dominance": [
            {"label": "full fine-tuning", "param_fraction": 1.0, "dev_mean": 0.84, "beaten_by": []},
            {"label": "BitFit", "param_fraction": 0.002, "dev_mean": 0.81, "beaten_by": ["~0.1%"]},
            {"label": "LoRA", "param_fraction": 0.003, "dev_mean": 0.83, "beaten_by": []},
        ],
    }
    baselines = {
        "trials": [
            {"task": "mrpc", "method": "full", "wall_seconds": 300.0},
            {"task": "mrpc", "method": "lora", "wall_seconds": 200.0},
            {"task": "sst2", "method": "lora", "wall_seconds": 50.0},
        ]
    }
    plan = {"task_budgets": {"mrpc": {"max_steps": 300, "max_length": 128}}}
    text = report.transfer_bullet("mrpc", plan, check, baselines)
    assert "300 steps, max length 128" in text and "300-300 s for full fine-tuning and 200-200 s" in text
    assert "by 4.0 points" in text and "~0.1% f1 0.820 (+2.0 points)" in text
    assert "dominate 1 of 3 MRPC baselines (BitFit); not dominated: LoRA." in text


def test_a_server_that_does_not_answer_is_a_clear_error_naming_its_log(tmp_path) -> None:
    import httpx

    log = tmp_path / "server.log"
    with httpx.Client(
        base_url=f"http://127.0.0.1:{services.free_port()}", transport=services.server_transport(log)
    ) as http:
        with pytest.raises(phases.ExperimentError, match=r"did not answer GET /api/v1/studies/3 \(ConnectError") as err:
            http.get("/api/v1/studies/3")
    assert str(log) in str(err.value)


def test_a_server_that_never_becomes_healthy_is_stopped(tmp_path, monkeypatch) -> None:
    import subprocess

    started: list[subprocess.Popen] = []
    real = subprocess.Popen

    def popen(cmd, **kw):  # a stand-in for `autopeft serve` that never answers
        started.append(real([sys.executable, "-c", "import time; time.sleep(60)"], **kw))
        return started[-1]

    def unhealthy(self, timeout: float) -> None:
        raise phases.ExperimentError("autopeft serve did not answer")

    monkeypatch.setattr(services.subprocess, "Popen", popen)
    monkeypatch.setattr(services.Service, "_wait_healthy", unhealthy)
    with pytest.raises(phases.ExperimentError, match="did not answer"):
        services.Service(tmp_path).__enter__()
    assert len(started) == 1 and started[0].poll() is not None


def test_a_benchmark_command_exits_3_at_its_time_limit_and_1_on_an_error(capsys) -> None:
    deadlines: list[float | None] = []

    def stops(deadline: float | None) -> None:
        deadlines.append(deadline)
        raise phases.Unfinished("studies: 3 of 8 trials")

    def fails(deadline: float | None) -> None:
        raise phases.ExperimentError("the server refused study 'x'")

    assert phases.exit_code(stops, 0.5) == 3 and deadlines[0] is not None
    assert "time limit of 0.5 min reached (studies: 3 of 8 trials)" in capsys.readouterr().out
    assert phases.exit_code(fails, None) == 1 and "error: the server refused study 'x'" in capsys.readouterr().out
    assert phases.exit_code(deadlines.append, None) == 0 and deadlines[-1] is None


def test_sigterm_stops_a_benchmark_command_after_its_processes(tmp_path, capsys) -> None:
    """A benchmark killed with SIGTERM (a scheduler, ``kill``) still stops the server and workers it
    started: the signal becomes an exception, so every ``finally`` runs."""
    import os
    import signal
    import subprocess
    import time

    child: list[subprocess.Popen] = []

    def work(deadline: float | None) -> None:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        child.append(proc)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # never reached: the handler raises at once
        finally:
            services.terminate([proc], 10)

    before = signal.getsignal(signal.SIGTERM)
    assert phases.exit_code(work, None) == 143
    assert child[0].poll() is not None  # the child was stopped, not left running
    assert "stopped (SIGTERM)" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_a_benchmark_killed_with_sigkill_leaves_no_server_or_worker_running(tmp_path) -> None:
    """SIGKILL runs no ``finally``: the server and workers a benchmark started end anyway, because
    Linux signals them when it dies (``PR_SET_PDEATHSIG``), and the server takes its proposer along."""
    import os
    import signal
    import subprocess

    from tests.api.test_serve_lifetime import assert_all_end, descendants

    script = tmp_path / "bench.py"
    script.write_text(
        f"""import sys, time
from pathlib import Path
from benchmarks.harness import services
svc = services.Service(Path({str(tmp_path / "out")!r})).__enter__()
services.start_workers(svc, {{"device": "cpu", "workers": 1, "data": {str(FIXTURE_GLUE)!r}}}, "b", None)
print("ready", flush=True)
time.sleep(300)
"""
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    bench = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        lines = iter(bench.stdout.readline, "")
        assert "ready" in (line.strip() for line in lines)  # after the benchmark's own lines
        children = descendants(bench.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in children]
        assert any(b" serve " in c for c in commands) and any(b" worker " in c for c in commands), commands
        bench.send_signal(signal.SIGKILL)
        assert_all_end(bench, children)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
