"""The figures of the results experiment, from what its phases saved: the baselines per task, the
searches' fronts on dev and what they dominate, gp against sobol, the transfer, the issue's targets
(evaluated, never asserted). Pure but for reading a run's files (:func:`load_results`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.experiment.plan import TRANSFER_TARGETS, profile_of
from benchmarks.harness.analysis import completed, dominance, mean_std
from benchmarks.harness.records import load_json
from benchmarks.harness.reference import METHODS, TASK_LABELS, majority_dev_metrics


def nearest_front_points(front: Sequence[Mapping[str, Any]], targets: Sequence[float] = TRANSFER_TARGETS) -> list[int]:
    """For each target fraction, the index of the front point closest in log10 ``param_fraction``
    (ties: the better ``metric``). Fractions of 0 count as 1e-6."""
    if not front:
        raise ValueError("the front is empty")
    picks = []
    for target in targets:

        def distance(i: int, target: float = target) -> tuple[float, float]:
            f = max(float(front[i]["param_fraction"]), 1e-6)
            return (abs(math.log10(f) - math.log10(target)), -float(front[i]["metric"]))

        picks.append(min(range(len(front)), key=distance))
    return picks


def combined_front(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The non-dominated completed trials (search metric vs param_fraction) of several studies,
    most parameters first is not implied: best metric first, as :func:`study_front` orders them."""
    from autopeft.pareto import study_front

    pool: list[dict[str, Any]] = []
    for record in records:
        for t in completed(record["trials"]):
            pool.append({**t, "study_key": record["key"]})
    idx, _ = study_front([t["metric"] for t in pool], [t["param_fraction"] for t in pool])
    return [pool[i] for i in idx]


def baseline_summary(payload: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """baselines.json -> per task, per method: label, param_fraction, dev/search values over seeds."""
    out: dict[str, list[dict[str, Any]]] = {}
    order = list(METHODS)
    by: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for t in payload["trials"]:
        by.setdefault((t["task"], t["method"]), []).append(t)
    tasks = list(TASK_LABELS)
    for (task, method), rows in sorted(by.items(), key=lambda kv: (tasks.index(kv[0][0]), order.index(kv[0][1]))):
        name = rows[0]["metric_name"]
        out.setdefault(task, []).append(
            {
                "method": method,
                "label": METHODS[method][0],
                "param_fraction": rows[0]["param_fraction"],
                "metric_name": name,
                "dev": {n: [r["dev"][n] for r in rows] for n in rows[0]["dev"]},
                "search": [r["search"][name] for r in rows],
                "seeds": [r["seed"] for r in rows],
                "examples_per_second": [r["examples_per_second"] for r in rows],
                "wall_seconds": [r["wall_seconds"] for r in rows],
            }
        )
    return out


def near_full(
    configs: Sequence[Mapping[str, Any]], full_dev_mean: float, max_fraction: float = 0.01, points: float = 0.01
) -> list[str]:
    """Configurations under ``max_fraction`` of the parameters within ``points`` (1 point = 0.01 of a
    metric in [0, 1]) of full fine-tuning's dev mean."""
    return [
        c["label"] for c in configs if c["param_fraction"] < max_fraction and c["dev_mean"] >= full_dev_mean - points
    ]


def check_targets(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated (never asserted). ``met`` is None where data is missing."""
    name = TASK_LABELS[summary.get("task", "rte")]
    need = summary.get("dominated_target", 5)
    checks = []
    dom = summary.get("dominance")
    if dom:
        n = sum(bool(d["beaten_by"]) for d in dom)
        checks.append(
            {
                "target": f"a front configuration at least as good on {name} dev as each baseline with fewer "
                f"parameters, for >= {need} of 8 baselines",
                "met": n >= min(need, len(dom)) and len(dom) >= 8,
                "detail": f"{n} of {len(dom)} baselines beaten",
            }
        )
    else:
        checks.append(
            {
                "target": f"front beats >= {need} of 8 baselines on {name} dev with fewer parameters",
                "met": None,
                "detail": "no retrained front or no baselines",
            }
        )
    if summary.get("full_dev_mean") is not None:
        close = summary.get("near_full") or []
        checks.append(
            {
                "target": f"a front configuration below 1% parameters within 1 point of full fine-tuning on {name} dev",
                "met": bool(close),
                "detail": f"full fine-tuning {summary['full_dev_mean']:.4f}; {len(close)} configuration(s): "
                f"{', '.join(close) or 'none'}",
            }
        )
    else:
        checks.append(
            {
                "target": "within 1 point of full fine-tuning below 1% parameters",
                "met": None,
                "detail": "no full fine-tuning baseline",
            }
        )
    hv = summary.get("hypervolume")
    if hv and hv.get("gp") is not None and hv.get("sobol") is not None:
        checks.append(
            {
                "target": "gp hypervolume >= sobol hypervolume at equal budget (search objective)",
                "met": hv["gp"] >= hv["sobol"],
                "detail": f"after {hv['trials']} trials: gp {hv['gp']:.4f}, sobol {hv['sobol']:.4f}",
            }
        )
    else:
        checks.append({"target": "gp hypervolume >= sobol hypervolume", "met": None, "detail": "a study is missing"})
    if hv and hv.get("dev_gp") is not None:
        checks.append(
            {
                "target": f"gp's front has a larger {name} dev hypervolume than sobol's at equal trials",
                "met": hv["dev_gp"] > hv["dev_sobol"] if hv["equal_trials"] else None,
                "detail": f"dev hypervolume gp {hv['dev_gp']:.4f}, sobol {hv['dev_sobol']:.4f}"
                + ("" if hv["equal_trials"] else " (the studies ran unequal numbers of trials)"),
            }
        )
    tp = summary.get("throughput")
    if summary.get("profile", "gpu") != "gpu":
        pass  # the CPU profile measures no throughput (issue 9's GPU target)
    elif tp and tp.get("full") and tp.get("peft_median"):
        ratio = tp["peft_median"] / tp["full"]
        checks.append(
            {
                "target": "PEFT training samples/s >= 1.5x full fine-tuning",
                "met": ratio >= 1.5,
                "detail": f"median PEFT method {tp['peft_median']:.1f}/s vs full {tp['full']:.1f}/s: {ratio:.2f}x",
            }
        )
    else:
        checks.append(
            {"target": "PEFT samples/s >= 1.5x full fine-tuning", "met": None, "detail": "no throughput phase"}
        )
    return checks


def study_digest(record: Mapping[str, Any]) -> dict[str, Any]:
    s = record["study"]
    durations = [t["duration_s"] for t in record["trials"] if t.get("duration_s") is not None]
    return {
        "id": record["id"],
        "completed": s["counts"]["completed"],
        "failed": s["counts"]["failed"],
        "hypervolume": s["hypervolume"],
        "front": record["pareto"]["count"],
        "elapsed_s": s["elapsed_s"],
        "batch_wall_seconds": record["batch_wall_seconds"],
        "trial_seconds_median": statistics.median(durations) if durations else None,
        "gpu": record["gpu"],
    }


def load_results(out: Path, published: bool = False) -> dict[str, Any]:
    """Whatever the phases saved under ``out`` (a run's folder; with ``published``, the folder the
    report published it to, whose study records are ``study-<key>.json``)."""
    results: dict[str, Any] = {"meta": load_json(out / "meta.json"), "out": str(out), "studies": {}}
    plan = results["meta"]["plan"]
    for later in results["meta"].get("plans", []):  # a later command's per-task budgets (the transfer's)
        if later.get("task_budgets") and not plan.get("task_budgets"):
            plan["task_budgets"] = later["task_budgets"]
    for name in ("baselines", "retrain", "transfer", "throughput"):
        path = out / f"{name}.json"
        results[name] = load_json(path) if path.exists() else None
    for key in profile_of(results["meta"]["plan"])["searches"]:
        path = out / f"study-{key}.json" if published else out / "studies" / f"{key}.json"
        if path.exists():
            results["studies"][key] = load_json(path)
    return results


def summarise(results: Mapping[str, Any], floors: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """The numbers the report and the target checks need, from :func:`load_results`. ``floors``: the
    majority class's dev metric per transfer task, as an earlier report measured it (default: scored
    on the plan's data now)."""
    from benchmarks.plots import hypervolume_curve

    prof = profile_of(results["meta"]["plan"])
    task = prof["task"]
    summary: dict[str, Any] = {
        "profile": results["meta"]["plan"].get("profile", "gpu"),
        "task": task,
        "dominated_target": prof["dominated_target"],
    }
    base = baseline_summary(results["baselines"]) if results.get("baselines") else {}
    summary["baselines"] = base
    bline = [
        {
            "label": b["label"],
            "param_fraction": b["param_fraction"],
            "dev_mean": mean_std(b["dev"][b["metric_name"]])[0],
        }
        for b in base.get(task, [])
    ]
    full = next((b for b in bline if b["label"] == METHODS["full"][0]), None)
    summary["full_dev_mean"] = full["dev_mean"] if full else None
    retrain = results.get("retrain")
    configs = []
    if retrain:
        sources = {c["label"]: c.get("sources", []) for c in retrain["configs"]}
        for a in retrain["aggregate"]:
            if a["dev"].get(a["metric_name"]):
                mean, std = mean_std(a["dev"][a["metric_name"]])
                configs.append(
                    {
                        "label": a["label"],
                        "param_fraction": a["param_fraction"],
                        "dev_mean": mean,
                        "dev_std": std,
                        "seeds": a["seeds"],
                        "config": a["config"],
                        "sources": sources.get(a["label"], []),
                    }
                )
    summary["retrained"] = configs
    # the dev front of each search: its own Pareto configurations, retrained (dev mean over seeds)
    dev_fronts: dict[str, dict[str, Any]] = {}
    for key in results["studies"]:
        mine = [c for c in configs if any(src.split("#")[0] == key for src in c["sources"])]
        if mine:
            dev_fronts[key] = {"configs": [c["label"] for c in mine], "hypervolume": dev_hypervolume(mine)}
    summary["dev_fronts"] = dev_fronts
    gp_studies = [k for k in prof["front_studies"] if prof["searches"][k][1] != "sobol"]
    gp_configs = [c for c in configs if any(src.split("#")[0] in gp_studies for src in c["sources"])]
    summary["dominance"] = dominance(gp_configs, bline) if gp_configs and bline else None
    summary["near_full"] = near_full(gp_configs, full["dev_mean"]) if gp_configs and full else None
    curves = {key: hypervolume_curve(r["trials"]) for key, r in results["studies"].items()}
    summary["curves"] = curves
    gp_key, sobol_key = f"{task}-autopeft-gp", f"{task}-autopeft-sobol"
    gp, sobol = curves.get(gp_key), curves.get(sobol_key)
    if gp and sobol:
        n = min(len(gp), len(sobol))
        summary["hypervolume"] = {"trials": n, "gp": gp[n - 1], "sobol": sobol[n - 1]}
        if gp_key in dev_fronts and sobol_key in dev_fronts:
            summary["hypervolume"] |= {
                "equal_trials": len(gp) == len(sobol),
                "dev_gp": dev_fronts[gp_key]["hypervolume"],
                "dev_sobol": dev_fronts[sobol_key]["hypervolume"],
            }
    tp = results.get("throughput")
    if tp:
        alone = tp["alone"]
        full_eps = next((r["examples_per_second"] for r in alone if r["method"] == "full"), None)
        peft = [r["examples_per_second"] for r in alone if r["method"] not in ("full", "front")]
        summary["throughput"] = {"full": full_eps, "peft_median": statistics.median(peft) if peft else None}
    if results.get("transfer"):
        data = results["meta"]["plan"]["data"]
        summary["transfer"] = {}
        for other in prof["transfer_tasks"]:
            metric = transfer_metric(results["transfer"], base.get(other, []), other)
            floor = floors[other] if floors is not None else majority_floor(other, metric, data)
            summary["transfer"][other] = transfer_check(results["transfer"], base.get(other, []), other, floor)
    summary["targets"] = check_targets(summary)
    return summary


def transfer_metric(transfer: Mapping[str, Any], baselines: Sequence[Mapping[str, Any]], task: str) -> str:
    """The dev metric the transfer to ``task`` is judged by: its baselines' (else its rows')."""
    rows = transfer["aggregate"].get(task, [])
    return (baselines[0] if baselines else rows[0] if rows else {}).get("metric_name", "accuracy")


def majority_floor(task: str, metric: str, data: str | None) -> float | None:
    """The majority class's dev ``metric`` on ``task`` (None when the data folder is gone)."""
    try:
        return majority_dev_metrics(task, data).get(metric)
    except Exception:  # the data folder is gone (a report redrawn elsewhere): leave the floor out
        return None


def transfer_check(
    transfer: Mapping[str, Any], baselines: Sequence[Mapping[str, Any]], task: str, majority: float | None
) -> dict[str, Any]:
    """What the transferred configurations did on ``task``: the majority class's dev metric (``majority``),
    full fine-tuning's margin over it (the budget can rank methods only if that margin is 3 points or
    more), each configuration's dev mean, and the baselines each one dominates there."""
    rows = transfer["aggregate"].get(task, [])
    metric = transfer_metric(transfer, baselines, task)
    bline = [
        {"label": b["label"], "param_fraction": b["param_fraction"], "dev_mean": mean_std(b["dev"][metric])[0]}
        for b in baselines
        if b["dev"].get(metric)
    ]
    full = next((b for b in bline if b["label"] == METHODS["full"][0]), None)
    configs = []
    for r in rows:
        if r["dev"].get(metric):
            mean, std = mean_std(r["dev"][metric])
            configs.append(
                {
                    "label": r["label"],
                    "param_fraction": r["param_fraction"],
                    "dev_mean": mean,
                    "dev_std": std,
                    "seeds": r["seeds"],
                }
            )
    return {
        "metric": metric,
        "majority": majority,
        "full_dev_mean": full["dev_mean"] if full else None,
        "full_margin": (full["dev_mean"] - majority) if full and majority is not None else None,
        "ranks_methods": bool(full and majority is not None and full["dev_mean"] - majority >= 0.03),
        "configs": configs,
        "dominance": dominance(configs, bline) if configs and bline else [],
        "above_majority": [c["label"] for c in configs if majority is not None and c["dev_mean"] > majority],
    }


def dev_hypervolume(configs: Sequence[Mapping[str, Any]]) -> float:
    """Hypervolume of retrained configurations (dev mean vs param_fraction), as a study's is computed."""
    from autopeft.pareto import study_front

    return study_front([c["dev_mean"] for c in configs], [c["param_fraction"] for c in configs])[1]
