"""Issue 16: what early stopping saves and what it costs, measured with real training on CPU.

    # the real run: SST-2, the bundled MiniLM, issue 14's CPU budget, 30 trials a study (about 45 min
    # a seed on 2 cores; resumable, also from a fresh checkout: finished seeds are published)
    python benchmarks/early_stopping.py --out runs/early_stopping --time-limit 120
    # a dry run of the pipeline on the test fixtures (a minute; meaningless numbers)
    python benchmarks/early_stopping.py --dry-run --out /tmp/es_dry

For each study seed, two gp studies of the ``autopeft`` space on SST-2, identical but for
``"early_stopping": {"enabled": ...}``, run side by side through the real service (``autopeft
serve``, two ``autopeft worker --device cpu`` taking trials from both), so that both arms train
under the same load. Every trial trains with the budget of the CPU results experiment
(``benchmarks/gpu_experiment.py --profile cpu``: 200 steps of batch 16, max length 64, the
family learning rates of the ``short`` preset, the objective on 500 held-out training
examples), evaluates every ``--eval-every`` steps (the points where the rule may stop it) and
scores the SST-2 dev file at its end (``evaluate_dev``; reported, never optimised).

Each finished seed's two study records (every trial with its curve) are copied to
``benchmarks/results/early_stopping/``: the same command in a fresh checkout restores them instead
of training them again, and other settings of the rule can be replayed on them.

Reported per arm and seed (``benchmarks/results/early_stopping.json``, a section of
docs/early_stopping.md):

- training seconds: the sum over trials of the worker's ``train_seconds`` (stopped trials count
  what they trained), and the sum of trial durations (training, evaluation, data);
- hypervolume over trials (search objective) and the dev hypervolume of the final front (each
  front trial's own dev score);
- hypervolume over cumulative training seconds, to compare at equal compute;
- false stops: of the front configurations of the run without early stopping, how many the run
  with it trained and stopped (the Sobol trials of a seed are the same in both arms), and how
  many the rule would have stopped had it watched that run (a replay on its curves, each trial's
  peers being the trials that started before it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autopeft.early_stopping import EarlyStoppingSettings, Peer, best_until, decide
from autopeft.pareto import study_front
from benchmarks.experiment.plan import make_plan as experiment_plan
from benchmarks.experiment.plan import parse_args as experiment_args
from benchmarks.experiment.plan import search_body
from benchmarks.harness.phases import exit_code, say
from benchmarks.harness.records import (
    DOCS,
    RESULTS,
    ROOT,
    bench_meta,
    load_json,
    publish_records,
    read_records,
    restore_records,
    save_json,
)
from benchmarks.harness.report import render, say_targets, write_marked_section
from benchmarks.harness.services import Service
from benchmarks.harness.studies import run_batch

ARMS = ("off", "on")
PUBLISH = RESULTS / "early_stopping.json"
#: The finished studies' records (every trial's curve): a fresh checkout resumes from them, and a
#: new setting of the rule can be replayed on them without training again.
RECORDS = RESULTS / "early_stopping"
DOC = DOCS / "early_stopping.md"
BEGIN, END = "<!-- ES_BENCHMARK_BEGIN -->", "<!-- ES_BENCHMARK_END -->"
BOUND_BEGIN, BOUND_END = "<!-- ES_BOUND_BEGIN -->", "<!-- ES_BOUND_END -->"
BOUND_PUBLISH = RESULTS / "early_stopping_bound.json"
COMMAND = "python benchmarks/early_stopping.py --out runs/early_stopping --time-limit 120"
#: Trials of each study: the CPU results experiment's count.
TRIALS = 30


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="test fixtures, tiny budgets: checks the pipeline")
    p.add_argument("--out", type=Path, default=None, help="results folder (default runs/early_stopping)")
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"trials of each study (default {TRIALS}, as the CPU experiment; dry run 6)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds (default 0 1 2)")
    p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default 50; dry run 1)")
    p.add_argument(
        "--phases",
        nargs="+",
        choices=("run", "report", "bound"),
        default=["run", "report"],
        help="run, report, and bound: what any setting of the rule (and an oracle) could save on the\n"
        "finished runs without early stopping (no training)",
    )
    p.add_argument("--time-limit", type=float, default=None, metavar="MIN", help="stop cleanly after MIN minutes")
    p.add_argument("--publish", type=Path, default=None, help="JSON of the figures (default: benchmarks/results)")
    p.add_argument("--doc", type=Path, default=None, help="page whose measured section is rewritten")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU results experiment's plan (its budget, workers, data), with this benchmark's settings."""
    base = ["--profile", "cpu"] + (["--dry-run"] if args.dry_run else [])
    out = args.out or (ROOT / "runs" / ("early_stopping-dry" if args.dry_run else "early_stopping"))
    plan = experiment_plan(experiment_args(base + ["--out", str(out), "--searches", "sst2-autopeft-gp"]))
    plan["trials"] = args.trials or (6 if args.dry_run else TRIALS)
    plan["seeds"] = list(args.seeds)
    plan["eval_every"] = args.eval_every or (1 if args.dry_run else 50)
    return plan


def study_body(plan: Mapping[str, Any], seed: int, arm: str) -> dict[str, Any]:
    body = search_body(plan, f"es-{arm}-seed{seed}", "autopeft", "gp")
    body["name"] = f"issue 16 early stopping {arm}, seed {seed}: SST-2, space autopeft, gp"
    body["seed"] = seed
    body["training"] = {**body["training"], "seed": seed, "eval_every": plan["eval_every"], "evaluate_dev": True}
    body["early_stopping"] = {"enabled": arm == "on"}
    return body


def key(seed: int, arm: str) -> str:
    return f"es-{arm}-seed{seed}"


def run(plan: dict[str, Any], out: Path, deadline: float | None, published: Path | None) -> None:
    """Both arms of each seed side by side (one batch per seed); finished batches are kept, and with
    ``published``, restored from and copied to it (a later checkout resumes there)."""
    bodies = {seed: {key(seed, arm): study_body(plan, seed, arm) for arm in ARMS} for seed in plan["seeds"]}
    if published is not None:
        restore_records(published, out, {k: b for batch in bodies.values() for k, b in batch.items()})
    with Service(out) as svc:
        for seed in plan["seeds"]:
            run_batch(svc, plan, out, f"es-seed{seed}", bodies[seed], False, deadline)
            if published is not None:
                publish_records(published, out, list(bodies[seed]))


# -- analysis (pure; tested) ------------------------------------------------------------------------


def finished(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Completed and stopped trials, in the order they finished."""
    done = [t for t in trials if t["state"] in ("completed", "stopped") and t.get("finished_at")]
    return sorted(done, key=lambda t: t["finished_at"])


def train_seconds(trial: Mapping[str, Any]) -> float:
    return float((trial.get("extra") or {}).get("train_seconds") or 0.0)


def dev_metric(trial: Mapping[str, Any]) -> float | None:
    extra = trial.get("extra") or {}
    dev = (extra.get("metrics") or {}).get("dev") or {}
    return dev.get(extra.get("metric_name", "accuracy"))


def front_trials(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The completed trials on the study's front (search objective against trained share)."""
    done = [t for t in trials if t["state"] == "completed" and t.get("metric") is not None]
    idx, _ = study_front([t["metric"] for t in done], [t["param_fraction"] for t in done])
    return [done[i] for i in idx]


def dev_hypervolume(trials: Sequence[Mapping[str, Any]]) -> float:
    """Hypervolume of the final front's trials scored by their own dev metric."""
    front = [t for t in front_trials(trials) if dev_metric(t) is not None]
    return study_front([dev_metric(t) for t in front], [t["param_fraction"] for t in front])[1]


def hypervolume_over_seconds(trials: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(cumulative training seconds, hypervolume) after each finished trial, in finishing order."""
    points, metrics, fractions, spent = [], [], [], 0.0
    hv = 0.0
    for t in finished(trials):
        spent += train_seconds(t)
        if t["state"] == "completed":
            metrics.append(t["metric"])
            fractions.append(t["param_fraction"])
            hv = study_front(metrics, fractions)[1]
        points.append((spent, hv))
    return points


def hypervolume_at(points: Sequence[tuple[float, float]], seconds: float) -> float:
    """The hypervolume reached within ``seconds`` of training (0 before the first trial ends)."""
    best = 0.0
    for s, hv in points:
        if s <= seconds + 1e-9:
            best = hv
    return best


def replay_stops(
    trials: Sequence[Mapping[str, Any]], settings: EarlyStoppingSettings, total_steps: int
) -> dict[int, int]:
    """Trial number -> step at which the rule would have stopped it, in a run without the rule: each
    trial's curve is checked at each of its evaluations against the trials that started before it
    (they reached every step first: same budget, same workers)."""
    ordered = sorted((t for t in trials if t.get("curve") and t.get("started_at")), key=lambda t: t["started_at"])
    stopped: dict[int, int] = {}
    for i, t in enumerate(ordered):
        # a peer's curve as the rule saw it: cut where the replay stopped that peer
        peers = [
            Peer(float(p["param_fraction"]), [tuple(x) for x in p["curve"] if x[0] <= stopped.get(p["number"], x[0])])
            for p in ordered[:i]
        ]
        curve = [tuple(x) for x in t["curve"]]
        for n in range(1, len(curve) + 1):
            d = decide(
                settings,
                step=int(curve[n - 1][0]),
                total_steps=total_steps,
                curve=curve[:n],
                param_fraction=float(t["param_fraction"]),
                peers=peers,
            )
            if not d.go_on:
                stopped[int(t["number"])] = int(curve[n - 1][0])
                break
    return stopped


#: Settings replayed on the runs without early stopping (what a different rule would have done).
REPLAYED = {
    "defaults (quantile 0.5, margin 0.01)": {},
    "margin 0": {"margin": 0.0},
    "quantile 0.75, margin 0": {"quantile": 0.75, "margin": 0.0},
    "min_peers 2, margin 0": {"min_peers": 2, "margin": 0.0},
}


def replay_savings(
    trials: Sequence[Mapping[str, Any]], settings: EarlyStoppingSettings, total_steps: int
) -> dict[str, Any]:
    """What the rule would have saved on a run without it (each stopped trial's training seconds
    scaled by the share of steps it would have skipped) and how many front trials it would have stopped."""
    stops = replay_stops(trials, settings, total_steps)
    spent = sum(train_seconds(t) for t in trials)
    saved = sum(train_seconds(t) * (1 - stops[t["number"]] / total_steps) for t in trials if t["number"] in stops)
    front = front_trials(trials)
    return {
        "stopped": len(stops),
        "seconds_ratio": (spent - saved) / spent if spent else None,
        "front": len(front),
        "front_stopped": sum(t["number"] in stops for t in front),
    }


#: The rule's settings searched by the bound (:func:`grid_best`): 160 of them.
GRID = {
    "quantile": (0.25, 0.5, 0.75, 0.9, 1.0),
    "margin": (0.0, 0.01, 0.02, 0.05),
    "min_peers": (1, 2, 3, 5),
    "grace": (0.25, 0.5),
}


def grid_best(trials: Sequence[Mapping[str, Any]], total_steps: int) -> dict[int, dict[str, Any]]:
    """For each number of front trials stopped, the replayed setting of :data:`GRID` that spends the
    fewest training seconds on a run without the rule (:func:`replay_savings`)."""
    import itertools

    best: dict[int, dict[str, Any]] = {}
    for values in itertools.product(*GRID.values()):
        change = dict(zip(GRID, values, strict=True))
        got = replay_savings(trials, EarlyStoppingSettings(enabled=True, **change), total_steps)
        k = got["front_stopped"]
        if got["seconds_ratio"] is not None and (k not in best or got["seconds_ratio"] < best[k]["seconds_ratio"]):
            best[k] = {**got, "settings": change}
    return dict(sorted(best.items()))


def oracle(trials: Sequence[Mapping[str, Any]], total_steps: int) -> list[dict[str, Any]]:
    """What no rule that spares every front trial can beat, per evaluation step ``s``: the training
    seconds spent if every other trial were stopped at ``s`` (and the front trained to the end), and
    how many front trials score no better at ``s`` than the study's worst trial there (a rule on the
    metric cannot tell them from the trials it should stop)."""
    done = [t for t in trials if t["state"] == "completed" and t.get("curve")]
    front = {t["number"] for t in front_trials(done)}
    spent = sum(train_seconds(t) for t in done)
    steps = sorted({int(s) for t in done for s, _ in t["curve"] if int(s) < total_steps})
    out = []
    for step in steps:
        at = {t["number"]: best_until([tuple(x) for x in t["curve"]], step) for t in done}
        floor = min(v for v in at.values() if v is not None)
        saved = sum(train_seconds(t) * (1 - step / total_steps) for t in done if t["number"] not in front)
        out.append(
            {
                "step": step,
                "seconds_ratio": (spent - saved) / spent if spent else None,
                "front": len(front),
                "front_at_floor": sum(at[n] is not None and at[n] <= floor for n in front),
                "floor": floor,
            }
        )
    return out


def oracle_split(trials: Sequence[Mapping[str, Any]], total_steps: int) -> dict[str, Any] | None:
    """The oracle that stops at the first evaluation every non-front trial that is above the floor
    there (a metric can tell those from the floor), and every other non-front trial at the second:
    the training seconds spent, and those trials (None: fewer than two evaluation steps)."""
    done = [t for t in trials if t["state"] == "completed" and t.get("curve")]
    steps = sorted({int(s) for t in done for s, _ in t["curve"] if int(s) < total_steps})
    if len(steps) < 2:
        return None
    first, second = steps[:2]
    front = {t["number"] for t in front_trials(done)}
    at = {t["number"]: best_until([tuple(x) for x in t["curve"]], first) for t in done}
    floor = min(v for v in at.values() if v is not None)
    early = [t for t in done if t["number"] not in front and at[t["number"]] is not None and at[t["number"]] > floor]
    late = [t for t in done if t["number"] not in front and t not in early]
    spent = sum(train_seconds(t) for t in done)
    saved = sum(train_seconds(t) * (1 - first / total_steps) for t in early)
    saved += sum(train_seconds(t) * (1 - second / total_steps) for t in late)
    return {
        "steps": [first, second],
        "seconds_ratio": (spent - saved) / spent if spent else None,
        "stopped_first": sorted(t["number"] for t in early),
        "front_above_floor": sorted(n for n in front if at[n] is not None and at[n] > floor),
    }


def bound(records: Mapping[str, Mapping[str, Any]], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Per seed, on the run without early stopping: :func:`oracle` and :func:`grid_best`."""
    total_steps = int(plan["training"].get("max_steps") or 0)
    seeds = []
    for seed in plan["seeds"]:
        off = records.get(key(seed, "off"))
        if off is None:
            continue
        trials = [t for t in off["trials"] if t["state"] == "completed"]
        seeds.append(
            {
                "seed": seed,
                "trials": len(trials),
                "oracle": oracle(trials, total_steps),
                "oracle_split": oracle_split(trials, total_steps),
                "grid": grid_best(trials, total_steps),
            }
        )
    return {"total_steps": total_steps, "grid": {k: list(v) for k, v in GRID.items()}, "seeds": seeds}


def config_id(config: Mapping[str, Any]) -> str:
    import json

    return json.dumps(config, sort_keys=True)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values) if values else float("nan"),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def analyse(records: Mapping[str, Mapping[str, Any]], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Per seed and arm: seconds, hypervolumes, stops; then the issue's targets."""
    settings = EarlyStoppingSettings(enabled=True)
    total_steps = int(plan["training"].get("max_steps") or 0)
    seeds = []
    for seed in plan["seeds"]:
        off, on = records.get(key(seed, "off")), records.get(key(seed, "on"))
        if off is None or on is None:
            continue
        row: dict[str, Any] = {"seed": seed}
        for arm, rec in (("off", off), ("on", on)):
            trials = rec["trials"]
            curve = hypervolume_over_seconds(trials)
            row[arm] = {
                "study_id": rec["id"],
                "trials": len([t for t in trials if t["state"] in ("completed", "stopped", "failed")]),
                "completed": sum(t["state"] == "completed" for t in trials),
                "stopped": sum(t["state"] == "stopped" for t in trials),
                "failed": sum(t["state"] == "failed" for t in trials),
                "train_seconds": sum(train_seconds(t) for t in trials),
                "trial_seconds": sum(float(t.get("duration_s") or 0.0) for t in trials),
                "hypervolume": rec["study"]["hypervolume"],
                "dev_hypervolume": dev_hypervolume(trials),
                "hypervolume_over_seconds": curve,
                "front": [
                    {
                        "trial": t["number"],
                        "param_fraction": t["param_fraction"],
                        "search": t["metric"],
                        "dev": dev_metric(t),
                    }
                    for t in front_trials(trials)
                ],
                "stops": [
                    {"trial": t["number"], "last_step": t.get("last_step"), "param_fraction": t["param_fraction"]}
                    for t in trials
                    if t["state"] == "stopped"
                ],
            }
        row["seconds_ratio"] = row["on"]["train_seconds"] / row["off"]["train_seconds"]
        row["off_hypervolume_at_on_seconds"] = hypervolume_at(
            row["off"]["hypervolume_over_seconds"], row["on"]["train_seconds"]
        )
        # the front configurations of the run without early stopping, in the run with it
        on_state = {config_id(t["config"]): t["state"] for t in on["trials"]}
        front = front_trials(off["trials"])
        shared = [t for t in front if config_id(t["config"]) in on_state]
        row["front_off_in_on"] = len(shared)
        row["front_off_stopped_in_on"] = sum(on_state[config_id(t["config"])] == "stopped" for t in shared)
        replayed = replay_stops(off["trials"], settings, total_steps)
        row["front_off"] = len(front)
        row["front_off_stopped_by_replay"] = sum(t["number"] in replayed for t in front)
        row["replay_stopped"] = len(replayed)
        row["replay"] = {
            name: replay_savings(off["trials"], settings.model_copy(update=change), total_steps)
            for name, change in REPLAYED.items()
        }
        seeds.append(row)
    return {"seeds": seeds, "targets": targets(seeds)}


def targets(seeds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not seeds:
        return []

    def of(arm: str, field: str) -> list[float]:
        return [s[arm][field] for s in seeds]

    ratio = sum(of("on", "train_seconds")) / sum(of("off", "train_seconds"))
    per_seed = ", ".join(f"{s['seconds_ratio']:.0%}" for s in seeds)
    out = [
        {
            "target": "at the same number of trials, at most 60% of the training seconds",
            "met": ratio <= 0.6,
            "detail": f"{ratio:.0%} ({sum(of('on', 'train_seconds')):.0f} s vs {sum(of('off', 'train_seconds')):.0f} s; "
            f"per seed {per_seed})",
        }
    ]
    for field, name in (("dev_hypervolume", "dev hypervolume"), ("hypervolume", "search hypervolume")):
        off, on = mean_std(of("off", field)), mean_std(of("on", field))
        out.append(
            {
                "target": f"final {name} within the seed-to-seed spread of the run without (or better)",
                "met": on["mean"] >= off["mean"] - off["std"],
                "detail": f"with {on['mean']:.4f} ± {on['std']:.4f}, without {off['mean']:.4f} ± {off['std']:.4f}",
            }
        )
    at = [s["off_hypervolume_at_on_seconds"] for s in seeds]
    wins = sum(s["on"]["hypervolume"] > a for s, a in zip(seeds, at))
    out.append(
        {
            "target": "at the same training seconds, a larger hypervolume (search)",
            "met": statistics.fmean(of("on", "hypervolume")) > statistics.fmean(at),
            "detail": f"with {statistics.fmean(of('on', 'hypervolume')):.4f}, without at the same seconds "
            f"{statistics.fmean(at):.4f} (mean of seeds; larger in {wins} of {len(seeds)} seeds)",
        }
    )
    shared = sum(s["front_off_in_on"] for s in seeds)
    stopped = sum(s["front_off_stopped_in_on"] for s in seeds)
    front = sum(s["front_off"] for s in seeds)
    replayed = sum(s["front_off_stopped_by_replay"] for s in seeds)
    out.append(
        {
            "target": "a trial that would have been on the front is stopped in at most 1 case in 10",
            "met": replayed <= 0.1 * front and stopped <= 0.1 * max(shared, 1),
            "detail": f"replay on the runs without: {replayed} of {front} front trials stopped; the same front "
            f"configurations trained by the runs with: {stopped} of {shared} stopped",
        }
    )
    return out


# -- report -----------------------------------------------------------------------------------------


def section(result: Mapping[str, Any]) -> str:
    """The measured section of docs/early_stopping.md (``benchmarks/templates/early_stopping_section.md.j2``)."""
    seeds = result["analysis"]["seeds"]
    replays = []
    for name in REPLAYED:
        got = [s["replay"][name] for s in seeds if name in s.get("replay", {})]
        if not got:
            continue
        spent = [s["off"]["train_seconds"] for s in seeds if name in s.get("replay", {})]
        ratio = sum(g["seconds_ratio"] * w for g, w in zip(got, spent)) / sum(spent)
        stopped, front = sum(g["front_stopped"] for g in got), sum(g["front"] for g in got)
        trials = sum(s["off"]["trials"] for s in seeds)
        replays.append({"name": name, "stopped": sum(g["stopped"] for g in got), "trials": trials,
                        "ratio": ratio, "front_stopped": stopped, "front": front})  # fmt: skip
    return render(
        "early_stopping_section.md.j2",
        begin=BEGIN,
        end=END,
        command=command(result["plan"]),
        meta=result["meta"],
        plan=result["plan"],
        t=result["plan"]["training"],
        arms=ARMS,
        grace=EarlyStoppingSettings().grace,
        seeds=seeds,
        replays=replays,
        targets=result["analysis"]["targets"],
    )


def command(plan: Mapping[str, Any]) -> str:
    """The command that measured ``plan`` (its trial count, where it is not the default)."""
    return COMMAND + ("" if plan["trials"] == TRIALS else f" --trials {plan['trials']}")


def bound_section(result: Mapping[str, Any]) -> str:
    """The bound's section of docs/early_stopping.md (``benchmarks/templates/early_stopping_bound.md.j2``)."""
    b = result["bound"]
    return render(
        "early_stopping_bound.md.j2",
        begin=BOUND_BEGIN,
        end=BOUND_END,
        plan=result["plan"],
        bound=b,
        seeds=" ".join(str(s["seed"]) for s in b["seeds"]),
        settings=math.prod(len(values) for values in b["grid"].values()),
        json_name=BOUND_PUBLISH.name,
    )


def write_section(doc: Path, text: str) -> None:
    """Replace the measured section of ``doc`` (between the markers), or add it at the end."""
    write_marked_section(doc, text, BEGIN, END)


def report(plan: Mapping[str, Any], out: Path, publish: Path, doc: Path | None, dry: bool) -> dict[str, Any]:
    records = read_records(out / "studies", [key(seed, arm) for seed in plan["seeds"] for arm in ARMS])
    meta = load_json(out / "es-meta.json")
    meta["finished"] = max((r["finished"] for r in records.values()), default=None)
    analysis = analyse(records, plan)
    result = {"dry_run": dry, "plan": plan, "meta": meta, "analysis": analysis}
    save_json(publish, result)
    if doc is not None and analysis["seeds"]:
        write_section(doc, section(result))
    say_targets(analysis["targets"], "[dry run: meaningless] " if dry else "")
    say(f"report: wrote {publish}" + (f" and {doc}" if doc is not None else ""))
    return result


def bound_report(
    plan: Mapping[str, Any], records: Mapping[str, Any], publish: Path, doc: Path | None
) -> dict[str, Any]:
    """The bound of the runs without early stopping in ``records``: its JSON and its section."""
    result = {"plan": plan, "bound": bound(records, plan)}
    save_json(publish, result)
    if doc is not None and result["bound"]["seeds"]:
        write_marked_section(doc, bound_section(result), BOUND_BEGIN, BOUND_END)
    say(f"bound: wrote {publish}" + (f" and {doc}" if doc is not None else ""))
    return result


def republish(into: Path) -> list[Path]:
    """Both sections of docs/early_stopping.md and the bound's JSON again, under ``into`` laid out as the
    repository (its page updated in place, a copy of this checkout's when there is none). The measured
    section from the published figures (the records of that 16-trial run were not kept); the bound
    from the published records of the runs without early stopping. Returns the JSON and the page."""
    doc = into / DOC.relative_to(ROOT)
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(DOC.read_text())
    write_section(doc, section(load_json(PUBLISH)))
    plan = load_json(BOUND_PUBLISH)["plan"]
    records = read_records(RECORDS, [key(seed, "off") for seed in plan["seeds"]])
    publish = into / BOUND_PUBLISH.relative_to(ROOT)
    bound_report(plan, records, publish, doc)
    return [publish, doc]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda deadline: run_phases(args, deadline), args.time_limit)


def run_phases(args: argparse.Namespace, deadline: float | None) -> None:
    plan = make_plan(args)
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    bench_meta(out / "es-meta.json", plan)
    if "run" in args.phases:
        run(plan, out, deadline, None if args.dry_run else RECORDS)
    if "bound" in args.phases:
        dry = bool(args.dry_run)
        if not dry:
            bodies = {key(seed, "off"): study_body(plan, seed, "off") for seed in plan["seeds"]}
            restore_records(RECORDS, out, bodies)
        records = read_records(out / "studies", [key(seed, "off") for seed in plan["seeds"]])
        publish = args.publish or (out / BOUND_PUBLISH.name if dry else BOUND_PUBLISH)
        bound_report(plan, records, publish, args.doc if args.doc is not None else (None if dry else DOC))
    if "report" in args.phases:
        dry = bool(args.dry_run)
        publish = args.publish or (out / "early_stopping.json" if dry else PUBLISH)
        doc = args.doc if args.doc is not None else (None if dry else DOC)
        report(plan, out, publish, doc, dry)


if __name__ == "__main__":
    sys.exit(main())
