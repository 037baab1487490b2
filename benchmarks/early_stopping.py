"""Issue 16: what early stopping saves and what it costs, measured with real training on CPU.

    # the real run: SST-2, the bundled MiniLM, issue 14's CPU budget, 30 trials a study (about 45 min
    # a seed on 2 cores; resumable, also from a fresh checkout: finished seeds are published)
    python -m benchmarks.early_stopping --out runs/early_stopping --time-limit 120
    # a dry run of the pipeline on the test fixtures (a minute; meaningless numbers)
    python -m benchmarks.early_stopping --dry-run --out /tmp/es_dry

For each study seed, two gp studies of the ``autopeft`` space on SST-2, identical but for
``"early_stopping": {"enabled": ...}``, run side by side through the real service (``autopeft
serve``, two ``autopeft worker --device cpu`` taking trials from both), so that both arms train
under the same load. Every trial trains with the budget of the CPU results experiment
(``python -m benchmarks.gpu_experiment --profile cpu``: 200 steps of batch 16, max length 64, the
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
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autopeft.early_stopping import EarlyStoppingSettings
from benchmarks.analysis.early_stopping import ARMS, REPLAYED, analyse, bound, key
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

PUBLISH = RESULTS / "early_stopping.json"
#: The finished studies' records (every trial's curve): a fresh checkout resumes from them, and a
#: new setting of the rule can be replayed on them without training again.
RECORDS = RESULTS / "early_stopping"
DOC = DOCS / "early_stopping.md"
BEGIN, END = "<!-- ES_BENCHMARK_BEGIN -->", "<!-- ES_BENCHMARK_END -->"
BOUND_BEGIN, BOUND_END = "<!-- ES_BOUND_BEGIN -->", "<!-- ES_BOUND_END -->"
BOUND_PUBLISH = RESULTS / "early_stopping_bound.json"
COMMAND = "python -m benchmarks.early_stopping --out runs/early_stopping --time-limit 120"
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
