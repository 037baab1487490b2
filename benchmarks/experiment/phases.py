"""The results experiment's phases. Each saves JSON under the run's folder as it goes and skips what
is there, so the same command continues an interrupted run: ``baselines`` (one process of
``benchmarks.baselines`` per task, method and seed), ``studies`` (the searches), ``retrain`` (the
fronts on dev with every seed), ``transfer`` (front points on the other tasks), ``throughput``."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autopeft.api.lifeline import ends_with_this_process
from benchmarks.baselines import write_doc as write_baselines_doc
from benchmarks.experiment.analysis import combined_front, nearest_front_points, study_digest
from benchmarks.experiment.plan import (
    SEARCHES,
    TRANSFER_TARGETS,
    eval_body,
    profile_of,
    search_body,
    task_baseline_args,
)
from benchmarks.harness.analysis import aggregate, completed, config_key, config_summary, n_layers_of, trial_row
from benchmarks.harness.phases import ExperimentError, Unfinished, past, say
from benchmarks.harness.records import (
    ROOT,
    command_line,
    device_description,
    load_json,
    machine,
    now,
    package_version,
    save_json,
    versions,
)
from benchmarks.harness.reference import LEARNING_RATES, METHODS, TASK_LABELS
from benchmarks.harness.services import Service, child_env, pump, tail, terminate
from benchmarks.harness.studies import run_batch


def start_meta(out: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """meta.json: device, versions, the plan and every command that worked on this folder."""
    path = out / "meta.json"
    device_name = device_description(plan["device"])
    if path.exists():
        meta = load_json(path)
        if meta["dry_run"] != plan["dry_run"] or meta["device"] != plan["device"]:
            raise ExperimentError(
                f"{out} holds a run with dry_run={meta['dry_run']} on {meta['device']}; this one is "
                f"dry_run={plan['dry_run']} on {plan['device']}: use another --out"
            )
        if meta["plan"] != plan:
            say("note: the settings differ from the run that started this folder; phases already saved keep theirs")
            meta.setdefault("plans", []).append(plan)
    else:
        meta = {
            "dry_run": plan["dry_run"],
            "device": plan["device"],
            "device_name": device_name,
            "versions": versions() | {"botorch": package_version("botorch"), "fastapi": package_version("fastapi")},
            "machine": machine(plan["device"]),
            "plan": plan,
            "started": now(),
            "commands": [],
            "phases": {},
        }
    meta["commands"].append({"command": command_line(), "date": now(), "cwd": os.getcwd()})
    save_json(path, meta)
    return meta


def baseline_units(seeds: Sequence[int], tasks: Sequence[str] = tuple(TASK_LABELS)) -> list[tuple[str, str, int]]:
    """One benchmarks.baselines process per task, method and seed: a unit small enough to resume from."""
    return [(task, method, seed) for task in tasks for method in METHODS for seed in seeds]


def phase_baselines(plan: dict[str, Any], out: Path, force: bool, deadline: float | None = None) -> None:
    """``python -m benchmarks.baselines`` for every task, method and seed, ``baseline_jobs`` processes side by
    side; units already measured are kept (unless ``force``); merged into baselines.json."""
    folder = out / "baselines"
    units = baseline_units(plan["seeds"], baseline_tasks(plan))
    path = {u: folder / f"{u[0]}-{u[1]}-seed{u[2]}.json" for u in units}

    def done(u: tuple[str, str, int]) -> bool:
        return path[u].exists() and bool(load_json(path[u]).get("complete"))

    if not force:
        restore_units(out / "baselines.json", path)
    pending = [u for u in units if force or not done(u)]
    say(
        f"baselines: {len(units)} trials ({len(units) - len(pending)} already measured), "
        f"{plan['baseline_jobs']} at a time"
    )
    running: list[tuple[tuple[str, str, int], subprocess.Popen, Path, threading.Thread]] = []
    try:
        while pending or running:
            while pending and len(running) < max(1, plan["baseline_jobs"]) and not past(deadline):
                u = pending.pop(0)
                cmd = [sys.executable, "-m", "benchmarks.baselines", "--tasks", u[0], "--methods", u[1]]
                cmd += ["--seeds", str(u[2]), "--out", str(path[u]), "--doc", str(path[u].with_suffix(".md"))]
                cmd += task_baseline_args(plan, u[0])
                log = out / "logs" / f"baselines-{u[0]}-{u[1]}-seed{u[2]}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=child_env(),
                    cwd=ROOT,
                    preexec_fn=ends_with_this_process(),
                )
                thread = threading.Thread(target=pump, args=(proc, log, "baselines"), daemon=True)
                thread.start()
                running.append((u, proc, log, thread))
            for item in list(running):
                u, proc, log, thread = item
                if proc.poll() is not None:
                    thread.join()
                    running.remove(item)
                    if proc.returncode != 0:
                        raise ExperimentError(f"benchmarks.baselines {u} failed ({proc.returncode}): {tail(log)}")
            if past(deadline):
                raise Unfinished(f"baselines: {len(pending) + len(running)} trial(s) left")
            time.sleep(0.5)
    finally:
        terminate([item[1] for item in running], 10)
    parts = [load_json(path[u]) for u in units]
    merged = merge_baselines(parts, plan["baseline_args"], plan["seeds"], plan.get("task_budgets"))
    save_json(out / "baselines.json", merged)
    write_baselines_doc(merged, out / "baselines.md", plan["data"])
    say(f"baselines: {len(merged['trials'])} trials, wrote {out / 'baselines.json'} and {out / 'baselines.md'}")


def baseline_tasks(plan: Mapping[str, Any]) -> list[str]:
    """The tasks the baselines phase measures: the profile's (the CPU profile's MRPC only with a transfer phase)."""
    prof = profile_of(plan)
    if plan.get("profile") == "cpu" and not plan.get("transfer", False):
        return [prof["task"]]
    return list(prof["baseline_tasks"])


def restore_units(merged: Path, paths: Mapping[tuple[str, str, int], Path]) -> int:
    """Unit files of the trials an earlier baselines.json holds (a fresh checkout keeps only the merged
    file, published under benchmarks/results): measured units are not trained again. Returns how many."""
    if not merged.exists():
        return 0
    data = load_json(merged)
    if not data.get("complete"):
        return 0
    header = {k: v for k, v in data.items() if k not in ("trials", "total_seconds")}
    restored = 0
    for t in data["trials"]:
        unit = (t["task"], t["method"], t["seed"])
        if unit in paths and not paths[unit].exists():
            save_json(paths[unit], header | {"trials": [t]})
            restored += 1
    if restored:
        say(f"baselines: {restored} trial(s) restored from {merged}")
    return restored


def merge_baselines(
    parts: Sequence[Mapping[str, Any]],
    args: Sequence[str],
    seeds: Sequence[int],
    budgets: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """One baselines.json (the format of benchmarks.baselines) from the runs of single trials."""
    tasks, methods = list(TASK_LABELS), list(METHODS)
    merged = dict(parts[0])
    merged["trials"] = sorted(
        (t for p in parts for t in p["trials"]),
        key=lambda t: (tasks.index(t["task"]), methods.index(t["method"]), t["seed"]),
    )
    merged["command"] = (
        "# one process per task, method and seed, several side by side:\n"
        "python -m benchmarks.baselines --tasks TASK --methods METHOD --seeds SEED "
        + " ".join(shlex.quote(a) for a in args)
        + f"\n# seeds {list(seeds)}"
        + "".join(
            f"\n# {task}: --max-steps {b['max_steps']} --max-length {b['max_length']}"
            for task, b in (budgets or {}).items()
        )
    )
    if budgets:
        merged["task_budgets"] = {k: dict(v) for k, v in budgets.items()}
    merged["complete"] = all(p.get("complete") for p in parts)
    merged["learning_rates"] = {k: v for p in parts for k, v in p["learning_rates"].items()}
    # the sum of the trials' wall times (they ran side by side, so the phase took less)
    merged["total_seconds"] = sum(t["wall_seconds"] for t in merged["trials"])
    merged["date"] = min(p["date"] for p in parts)
    return merged


def phase_studies(plan: dict[str, Any], out: Path, svc: Service, force: bool, deadline: float | None = None) -> None:
    prof = profile_of(plan)
    records = {}
    for batch in prof["batches"]:
        bodies = {key: search_body(plan, key, *prof["searches"][key]) for key in batch}
        records |= run_batch(
            svc, plan, out, batch[0] if len(batch) == 1 else f"{prof['task']}-searches", bodies, force, deadline
        )
    save_json(out / "studies.json", {key: study_digest(r) for key, r in records.items()})


def load_studies(out: Path, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    records = {}
    for key in keys:
        path = out / "studies" / f"{key}.json"
        if not path.exists():
            raise ExperimentError(f"{path} is missing: run the studies phase first")
        records[key] = load_json(path)
    return records


def front_configs(records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Pareto trials of the given studies, one entry per distinct configuration, labelled c0, c1 ..."""
    configs: dict[str, dict[str, Any]] = {}
    for key, record in records.items():
        n = n_layers_of(record)
        for t in record["pareto"]["data"]:
            k = config_key(t["config"], n)
            entry = configs.setdefault(
                k,
                {"config": t["config"], "param_fraction": t["param_fraction"], "search": t["metric"], "sources": []},
            )
            entry["sources"].append(f"{key}#{t['number']}")
    out = sorted(configs.values(), key=lambda c: c["param_fraction"])
    for i, c in enumerate(out):
        c["label"] = f"c{i}"
        c["summary"] = config_summary(c["config"])
    return out


def rows_of(records: Mapping[str, Mapping[str, Any]], **tags: Any) -> list[dict[str, Any]]:
    rows = []
    for record in records.values():
        seed = record["body"]["training"]["seed"]
        task = record["body"]["task"]["name"]
        for t in record["trials"]:
            row = trial_row(t, seed)
            row["label"] = (row["label"] or "").split(":")[0]
            rows.append(row | {"task": task, "study_key": record["key"]} | tags)
    return rows


def phase_retrain(plan: dict[str, Any], out: Path, svc: Service, force: bool, deadline: float | None = None) -> None:
    prof = profile_of(plan)
    records = load_studies(out, prof["front_studies"])
    configs = front_configs(records)
    say(f"retrain: {len(configs)} Pareto configuration(s) of {', '.join(records)} x seeds {plan['seeds']}")
    bodies = {
        f"retrain-seed{s}": eval_body(
            plan, f"{prof['issue']} retrain: {prof['label']} fronts, seed {s}", prof["task"], s, configs
        )
        for s in plan["seeds"]
    }
    done = run_batch(svc, plan, out, "retrain", bodies, force, deadline)
    rows = rows_of(done)
    save_json(out / "retrain.json", {"configs": configs, "rows": rows, "aggregate": aggregate(rows)})


def phase_transfer(plan: dict[str, Any], out: Path, svc: Service, force: bool, deadline: float | None = None) -> None:
    prof = profile_of(plan)
    records = load_studies(out, [k for k in prof["front_studies"] if prof["searches"][k][1] != "sobol"])
    front = combined_front(records.values())
    picks = nearest_front_points(front, TRANSFER_TARGETS)
    configs: list[dict[str, Any]] = []
    for target, i in zip(TRANSFER_TARGETS, picks):
        t = front[i]
        same = next((c for c in configs if c["source"] == f"{t['study_key']}#{t['number']}"), None)
        if same:  # one front point is nearest to both targets: train it once
            same["targets"].append(target)
            same["label"] += f"/~{100 * target:g}%"
            continue
        configs.append(
            {
                "label": f"~{100 * target:g}%",
                "targets": [target],
                "config": t["config"],
                "summary": config_summary(t["config"]),
                "param_fraction": t["param_fraction"],
                "search": t["metric"],
                "source": f"{t['study_key']}#{t['number']}",
            }
        )
    for c in configs:
        say(f"transfer: {c['label']} = {c['source']}: {c['summary']} ({100 * c['param_fraction']:.3f}%)")
    bodies = {
        f"transfer-{task}-seed{s}": eval_body(plan, f"{prof['issue']} transfer: {task}, seed {s}", task, s, configs)
        for task in prof["transfer_tasks"]
        for s in plan["seeds"]
    }
    done = run_batch(svc, plan, out, "transfer", bodies, force, deadline)
    rows = rows_of(done)
    summary = {task: aggregate([r for r in rows if r["task"] == task]) for task in prof["transfer_tasks"]}
    save_json(out / "transfer.json", {"configs": configs, "rows": rows, "aggregate": summary})


def phase_throughput(plan: dict[str, Any], out: Path, deadline: float | None = None) -> None:
    """Each baseline method (and the transferred configurations) alone on the device, a fixed number of steps."""
    from autopeft.train import TrialCache, run_trial

    rates = LEARNING_RATES[plan["lr_preset"]]
    items = []
    for method, (label, config) in METHODS.items():
        config = json.loads(json.dumps(config))
        if "fish" in config:
            config["fish"]["samples"] = plan["fish_samples"]
        items.append({"method": method, "label": label, "config": config, "lr": rates[method]})
    transfer = out / "transfer.json"
    if transfer.exists():
        for c in load_json(transfer)["configs"]:
            items.append(
                {"method": "front", "label": f"front {c['label']}", "config": c["config"], "lr": rates["adapter"]}
            )
    base = {
        "max_steps": plan["throughput_steps"],
        "batch_size": plan["training"]["batch_size"],
        "max_length": plan["training"]["max_length"],
        "seed": 0,
    }
    cache = TrialCache()
    say(f"throughput: warm-up on {plan['device']}")
    run_trial(
        "rte",
        plan["model"],
        {"lora": {"rank": 8}},
        base | {"max_steps": 3, "learning_rate": 1e-3},
        device=plan["device"],
        cache=cache,
        data_dir=plan["data"],
    )
    rows = []
    for item in items:
        if past(deadline):
            raise Unfinished("throughput: not measured yet")
        settings = base | {"learning_rate": item["lr"]}
        if item["method"] == "front":
            settings["family_learning_rates"] = plan["training"]["family_learning_rates"]
        r = run_trial(
            "rte", plan["model"], item["config"], settings, device=plan["device"], cache=cache, data_dir=plan["data"]
        )
        rows.append(
            {
                "method": item["method"],
                "label": item["label"],
                "config": item["config"],
                "param_fraction": r.param_fraction,
                "examples_per_second": r.examples_per_second,
                "train_seconds": r.train_seconds,
                "steps": r.steps,
                "device": r.device,
            }
        )
        say(
            f"throughput: {item['label']}: {r.examples_per_second:.1f} examples/s "
            f"({100 * r.param_fraction:.3f}% params)"
        )
    shared = {}
    for key in SEARCHES:
        path = out / "studies" / f"{key}.json"
        if path.exists():
            shared[key] = shared_throughput(load_json(path))
    save_json(out / "throughput.json", {"steps": plan["throughput_steps"], "alone": rows, "shared": shared})


def shared_throughput(record: Mapping[str, Any]) -> dict[str, Any]:
    """Examples/s of a study's trials while its workers shared the device, per trial and in all."""
    trials = completed(record["trials"])
    eps = [t["extra"]["examples_per_second"] for t in trials if (t.get("extra") or {}).get("examples_per_second")]
    examples = sum(
        t["extra"]["examples_per_second"] * t["extra"]["train_seconds"]
        for t in trials
        if (t.get("extra") or {}).get("examples_per_second")
    )
    wall = record["batch_wall_seconds"]
    return {
        "workers": record["workers"],
        "trials": len(trials),
        "per_trial_median": statistics.median(eps) if eps else None,
        "aggregate": examples / wall if wall else None,
        "gpu": record["gpu"],
    }
