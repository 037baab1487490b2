"""Issue 32: gp against TPE and Sobol on real data, over 3 study seeds (SST-2 at the CPU budget).

    # the real run on CPU: 13 studies of 30 trials (the CPU experiment ran a pair of them in 39 min on
    # 2 cores; longer under load); resumable: the same command continues where it stopped
    python benchmarks/methods.py --out runs/methods --time-limit 900
    # only some studies (e.g. before a method exists on the server), or only the report
    python benchmarks/methods.py --out runs/methods --studies autopeft-gp-seed1 autopeft-sobol-seed1
    python benchmarks/methods.py --out runs/methods --phases report
    # a dry run of the pipeline on the test fixtures (a few minutes; meaningless numbers)
    python benchmarks/methods.py --dry-run --out /tmp/methods_dry

The protocol of the CPU results experiment (``benchmarks/gpu_experiment.py --profile cpu``): the real
service (``autopeft serve``, two ``autopeft worker --device cpu`` of one thread), the bundled MiniLM,
SST-2 at 200 steps of batch 16, max length 64, the family learning rates of the ``short`` preset, the
objective on 500 held-out training examples, 30 trials a study, gp and tpe after 8 Sobol trials.

1. ``run``: the studies of :data:`BATCHES`, a batch at a time (the studies of a batch share the two
   workers, so they run under the same load): gp, tpe and sobol on the ``autopeft`` space, then gp
   and tpe on the ``full`` space (d=33), each with study seeds 0, 1 and 2. A study of seed s also
   trains with seed s. gp and sobol of seed 0 on the ``autopeft`` space are the CPU experiment's
   studies (``benchmarks/results/cpu``), reused. Every study scores its trials on the SST-2 dev file
   as well (``evaluate_dev``: reported, never optimised): training is deterministic, so a trial's dev
   score is what retraining its configuration with the study's seed on the study's split gives, for
   the cost of one pass over dev (the CPU experiment's retraining reproduced every search metric of
   its seed-0 studies exactly, and its seed-0 rows give the dev scores of the two reused fronts).
2. ``report``: per method and space, mean ± std over seeds of the search hypervolume at 10, 20 and 30
   trials, above the majority class too, and the dev hypervolume of each study's front at 30 trials;
   gp against each peer per seed with a paired sign count; the issue's targets, evaluated.
   ``benchmarks/results/methods/summary.json``, plots, and the "Methods on real data" section of
   docs/results.md.

Finished study records are published to ``benchmarks/results/methods/`` as they finish; a fresh
checkout restores them instead of training again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
for _p in (ROOT, BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import gpu_experiment as gx

SEEDS = (0, 1, 2)
METHODS = {"autopeft": ("gp", "tpe", "sobol"), "full": ("gp", "tpe")}
#: Studies that run side by side on the two workers, by batch name, in order (keys: :func:`key`).
#: tpe of seeds 0 and 1 come second, so that gp meets each peer on two seeds as early as possible.
BATCHES: dict[str, tuple[str, ...]] = {
    "autopeft-seed1": ("autopeft-gp-seed1", "autopeft-sobol-seed1"),
    "autopeft-tpe": ("autopeft-tpe-seed0", "autopeft-tpe-seed1"),
    "autopeft-seed2": ("autopeft-gp-seed2", "autopeft-sobol-seed2", "autopeft-tpe-seed2"),
    "full-seed0": ("full-gp-seed0", "full-tpe-seed0"),
    "full-seed1": ("full-gp-seed1", "full-tpe-seed1"),
    "full-seed2": ("full-gp-seed2", "full-tpe-seed2"),
}
#: The CPU experiment's studies reused as seed 0 (their record files, in benchmarks/results/cpu).
REUSED = {
    "autopeft-gp-seed0": "study-sst2-autopeft-gp.json",
    "autopeft-sobol-seed0": "study-sst2-autopeft-sobol.json",
}
#: Sobol trials before gp and tpe take over: the CPU experiment's, so that each seed's studies share them.
MODEL_METHODS = ("gp", "tpe")
TRIAL_COUNTS = (10, 20, 30)
#: One colour per method in every plot.
COLOURS = {"gp": "tab:blue", "tpe": "tab:green", "sobol": "tab:orange"}
RESULTS = ROOT / "benchmarks" / "results"
RECORDS = RESULTS / "methods"
CPU_RESULTS = RESULTS / "cpu"
DOC = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- methods on real data: python benchmarks/methods.py -->", "<!-- end of the methods on real data -->"
COMMAND = "python benchmarks/methods.py --out runs/methods --time-limit 900"


def key(space: str, method: str, seed: int) -> str:
    return f"{space}-{method}-seed{seed}"


def parse_key(k: str) -> tuple[str, str, int]:
    """``(space, method, seed)`` of a study key."""
    space, method, seed = k.rsplit("-", 2)
    return space, method, int(seed.removeprefix("seed"))


ALL_KEYS = tuple(key(space, m, s) for space, methods in METHODS.items() for m in methods for s in SEEDS)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="test fixtures, tiny budgets: checks the pipeline")
    p.add_argument("--out", type=Path, default=None, help="results folder (default runs/methods)")
    p.add_argument("--trials", type=int, default=None, help="trials of each study (default 30; dry run 6)")
    p.add_argument("--data", default=None, help="GLUE root with SST-2/ (default: the CPU experiment's)")
    p.add_argument(
        "--studies",
        nargs="+",
        default=None,
        metavar="KEY",
        help=f"run only these studies (default all):\n{' '.join(ALL_KEYS)}",
    )
    p.add_argument("--phases", nargs="+", choices=("run", "report"), default=["run", "report"])
    p.add_argument("--time-limit", type=float, default=None, metavar="MIN", help="stop cleanly after MIN minutes")
    p.add_argument(
        "--records",
        type=Path,
        default=None,
        help="where finished study records are published and restored from (default benchmarks/results/methods)",
    )
    p.add_argument("--publish", type=Path, default=None, help="folder of summary.json and plots (default: --records)")
    p.add_argument("--doc", type=Path, default=None, help="page whose section is rewritten (default docs/results.md)")
    args = p.parse_args(argv)
    if args.studies and not set(args.studies) <= set(ALL_KEYS):
        p.error(f"--studies: unknown {sorted(set(args.studies) - set(ALL_KEYS))}; the studies are {' '.join(ALL_KEYS)}")
    return args


def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU results experiment's plan (its budget, workers, data), with this benchmark's studies."""
    base = ["--profile", "cpu"] + (["--dry-run"] if args.dry_run else []) + (["--data", args.data] if args.data else [])
    out = args.out or (ROOT / "runs" / ("methods-dry" if args.dry_run else "methods"))
    plan = gx.make_plan(gx.parse_args(base + ["--out", str(out), "--searches", "sst2-autopeft-gp"]))
    plan["trials"] = args.trials or (6 if args.dry_run else 30)
    plan["studies"] = list(args.studies or ALL_KEYS)
    plan["reuse"] = not args.dry_run and plan["trials"] == 30
    return plan


def study_body(plan: Mapping[str, Any], k: str) -> dict[str, Any]:
    """One search study: the CPU experiment's body for ``space`` and ``method``, with the study seed as both
    the optimiser's and the training seed, and the dev file scored after each trial."""
    space, method, seed = parse_key(k)
    body = gx.search_body(plan, k, space, method)
    body["name"] = f"issue 32 {k}: SST-2, space {space}, {method}, seed {seed}"
    if plan["n_initial"] and method in MODEL_METHODS:
        body["optimizer"]["n_initial"] = plan["n_initial"]
    body["seed"] = seed
    body["training"] = {**plan["training"], "seed": seed, "evaluate_dev": True}
    return body


def batches_of(keys: Sequence[str]) -> dict[str, list[str]]:
    """:data:`BATCHES` narrowed to ``keys``, without the reused studies."""
    chosen = [k for k in keys if k not in REUSED]
    narrowed = {name: [k for k in batch if k in chosen] for name, batch in BATCHES.items()}
    return {name: batch for name, batch in narrowed.items() if batch}


def restore_reused(out: Path) -> list[str]:
    """Copy the CPU experiment's seed-0 studies into ``out/studies`` under this benchmark's keys."""
    restored = []
    for k, name in REUSED.items():
        dst = out / "studies" / f"{k}.json"
        if not dst.exists():
            record = gx.load_json(CPU_RESULTS / name)
            gx.save_json(dst, record | {"reused_from": f"benchmarks/results/cpu/{name}"})
            restored.append(k)
    if restored:
        gx.say(f"reused the CPU experiment's studies as {restored}")
    return restored


def run(plan: dict[str, Any], out: Path, deadline: float | None, records: Path | None) -> None:
    """The chosen studies, a batch at a time; with ``records``, finished studies are restored from and
    published to it (a later checkout resumes there)."""
    if plan["reuse"]:
        restore_reused(out)
    batches = batches_of(plan["studies"])
    bodies = {k: study_body(plan, k) for batch in batches.values() for k in batch}
    if records is not None:
        gx.restore_records(records, out, bodies)
    with gx.Service(out) as svc:
        for name, batch in batches.items():
            gx.run_batch(svc, plan, out, name, {k: bodies[k] for k in batch}, False, deadline)
            if records is not None:
                gx.publish_records(records, out, batch)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return gx.exit_code(lambda deadline: run_phases(args, deadline), args.time_limit)


def run_phases(args: argparse.Namespace, deadline: float | None) -> None:
    plan = make_plan(args)
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    gx.bench_meta(out / "methods-meta.json", plan)
    records = args.records or (None if args.dry_run else RECORDS)
    if "run" in args.phases:
        run(plan, out, deadline, records)
    if "report" in args.phases:
        publish = args.publish or records or out
        doc = args.doc if args.doc is not None else (None if args.dry_run else DOC)
        report(plan, out, publish, doc, bool(args.dry_run))


# -- analysis (pure; tested) ------------------------------------------------------------------------


def search_curve(trials: Sequence[Mapping[str, Any]]) -> list[float]:
    """A study's hypervolume after each trial, by number (:func:`plots.hypervolume_curve`)."""
    from plots import hypervolume_curve

    return hypervolume_curve(trials)


def _head_only(trial: Mapping[str, Any]) -> bool:
    """Whether a trial trains the classifier head only (``{}``: no PEFT parameter)."""
    return not trial.get("config")


def at(curve: Sequence[float], k: int) -> float | None:
    """The hypervolume after ``k`` trials (None: the study has fewer)."""
    return float(curve[k - 1]) if len(curve) >= k else None


def above_majority_curve(trials: Sequence[Mapping[str, Any]], majority: float) -> list[float]:
    """:func:`search_curve` above the ``majority`` metric and without the head-only configuration (every
    study finds it, and its shared term would hide the difference); a head-only trial keeps the value
    before it, so the curve is indexed by trial number like the plain one."""
    from plots import hypervolume_curve

    masked = [{**t, "state": "left out"} if _head_only(t) else t for t in trials]
    return hypervolume_curve(masked, majority)


def front_dev(
    record: Mapping[str, Any], metric: str, retrained: Mapping[str, float] | None = None
) -> list[dict[str, Any]] | None:
    """The study's front at its end (search metric vs trained share), each point with its dev score:
    the trial's own (``dev_<metric>``, the study scored dev), else ``retrained`` by configuration key (the
    reused studies: the CPU experiment's retraining with the study's training seed). None: a point has none."""
    n_layers = gx.n_layers_of(record)
    out = []
    for t in record["pareto"]["data"]:
        dev = (t.get("metrics") or {}).get(f"dev_{metric}")
        if dev is None and retrained is not None:
            dev = retrained.get(gx.config_key(t["config"], n_layers))
        if dev is None:
            return None
        out.append({"number": t["number"], "param_fraction": t["param_fraction"], "search": t["metric"], "dev": dev})
    return out


def dev_hypervolume(front: Sequence[Mapping[str, Any]], majority: float | None = None) -> float:
    """Hypervolume of the front's dev scores, as a study's is computed; with ``majority``, above it and
    without the head-only point."""
    from autopeft.pareto import STUDY_REFERENCE, study_front

    if majority is None:
        return study_front([p["dev"] for p in front], [p["param_fraction"] for p in front])[1]
    kept = [p for p in front if p["param_fraction"] > 0]
    reference = (majority, STUDY_REFERENCE[1])
    return study_front([p["dev"] for p in kept], [p["param_fraction"] for p in kept], reference)[1] if kept else 0.0


def study_row(
    k: str,
    record: Mapping[str, Any],
    majority: Mapping[str, float],
    metric: str,
    retrained: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """One study of summary.json: its hypervolumes at :data:`TRIAL_COUNTS`, on the search split and above
    its majority class, and the dev hypervolume of its front at its end."""
    space, method, seed = parse_key(k)
    trials = record["trials"]
    plain, above = search_curve(trials), above_majority_curve(trials, majority["search"])
    counts = record["study"]["counts"]
    front = front_dev(record, metric, retrained)
    durations = [t["duration_s"] for t in trials if t.get("duration_s") is not None]
    scoring = [
        t["extra"]["eval_seconds"] / t["duration_s"]
        for t in trials
        if (t.get("extra") or {}).get("eval_seconds") is not None and t.get("duration_s")
    ]
    row: dict[str, Any] = {
        "key": k,
        "space": space,
        "method": method,
        "seed": seed,
        "study_id": record["id"],
        "trials": len(trials),
        "completed": counts["completed"],
        "failed": counts["failed"],
    }
    for n in TRIAL_COUNTS:
        row[f"search_hypervolume_{n}"] = at(plain, n)
    for n in TRIAL_COUNTS:
        row[f"above_majority_hypervolume_{n}"] = at(above, n)
    last = TRIAL_COUNTS[-1]
    complete = len(trials) >= last
    row[f"dev_hypervolume_{last}"] = dev_hypervolume(front) if front is not None and complete else None
    row[f"dev_above_majority_hypervolume_{last}"] = (
        dev_hypervolume(front, majority["dev"]) if front is not None and complete else None
    )
    row |= {
        "front": front,
        "sources": _sources(trials),
        "front_sources": _sources(record["pareto"]["data"]),
        "trial_seconds_median": statistics.median(durations) if durations else None,
        # the share of a trial spent scoring (the search split, and dev where the study scores it)
        "scoring_share_median": statistics.median(scoring) if scoring else None,
        "batch": record.get("batch"),
        "batch_wall_seconds": record.get("batch_wall_seconds"),
        "machine": record.get("machine"),
        "created": record["study"].get("created_at"),
        "finished": record.get("finished"),
        "reused_from": record.get("reused_from"),
        "curve": plain,
        "above_majority_curve": above,
    }
    return row


def _sources(trials: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many trials each source proposed (sobol, gp, tpe ...)."""
    return dict(Counter(t.get("source") or "?" for t in trials))


MEASURES = (
    *(f"search_hypervolume_{n}" for n in TRIAL_COUNTS),
    *(f"above_majority_hypervolume_{n}" for n in TRIAL_COUNTS),
    f"dev_hypervolume_{TRIAL_COUNTS[-1]}",
    f"dev_above_majority_hypervolume_{TRIAL_COUNTS[-1]}",
)


def method_rows(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per space and method: mean, std and values over the seeds measured, for each of :data:`MEASURES`."""
    out = []
    for space, methods in METHODS.items():
        for method in methods:
            rows = sorted((r for r in studies if (r["space"], r["method"]) == (space, method)), key=lambda r: r["seed"])
            entry: dict[str, Any] = {"space": space, "method": method, "seeds": [r["seed"] for r in rows]}
            for m in MEASURES:
                values = [r[m] for r in rows if r[m] is not None]
                mean, std = gx.mean_std(values) if values else (None, None)
                entry[m] = {
                    "mean": mean,
                    "std": std,
                    "values": values,
                    "seeds": [r["seed"] for r in rows if r[m] is not None],
                }
            out.append(entry)
    return out


def comparisons(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """gp against each peer on each space: per seed, gp minus the peer for each of :data:`MEASURES`, and a
    paired sign count (seeds where gp is ahead, behind, level)."""
    by = {(r["space"], r["method"], r["seed"]): r for r in studies}
    out = []
    for space, methods in METHODS.items():
        for peer in (m for m in methods if m != "gp"):
            seeds = [s for s in SEEDS if (space, "gp", s) in by and (space, peer, s) in by]
            entry: dict[str, Any] = {"space": space, "peer": peer, "seeds": seeds}
            for m in MEASURES:
                diffs = {
                    s: by[(space, "gp", s)][m] - by[(space, peer, s)][m]
                    for s in seeds
                    if by[(space, "gp", s)][m] is not None and by[(space, peer, s)][m] is not None
                }
                entry[m] = {
                    "differences": {str(s): d for s, d in diffs.items()},
                    "gp_ahead": sum(d > 1e-9 for d in diffs.values()),
                    "gp_behind": sum(d < -1e-9 for d in diffs.values()),
                    "level": sum(abs(d) <= 1e-9 for d in diffs.values()),
                }
            out.append(entry)
    return out


def targets(methods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, on the means over seeds (``met`` None: a study is missing)."""
    means = {(r["space"], r["method"]): r for r in methods}
    last, first = TRIAL_COUNTS[-1], TRIAL_COUNTS[0]
    out = []

    def full_seeds(space: str, method: str, measure: str) -> bool:
        return len(means[(space, method)][measure]["values"]) == len(SEEDS)

    for space, peers in METHODS.items():
        m = f"search_hypervolume_{last}"
        others = [p for p in peers if p != "gp"]
        ready = all(full_seeds(space, x, m) for x in ("gp", *others))
        gp = means[(space, "gp")][m]["mean"]
        shown = ", ".join(f"{x} {_num(means[(space, x)][m]['mean'])}" for x in ("gp", *others))
        out.append(
            {
                "target": f"gp's mean search hypervolume above {' and '.join(others)}'s at {last} trials ({space} space)",
                "met": all(gp > means[(space, x)][m]["mean"] for x in others) if ready else None,
                "detail": f"means over seeds: {shown}",
            }
        )
    gp10, sobol30 = (
        means[("autopeft", "gp")][f"search_hypervolume_{first}"],
        means[("autopeft", "sobol")][f"search_hypervolume_{last}"],
    )
    ready = full_seeds("autopeft", "gp", f"search_hypervolume_{first}") and full_seeds(
        "autopeft", "sobol", f"search_hypervolume_{last}"
    )
    out.append(
        {
            "target": f"gp's mean search hypervolume at {first} trials at least sobol's at {last} (autopeft space)",
            "met": gp10["mean"] >= sobol30["mean"] if ready else None,
            "detail": f"gp at {first}: {_num(gp10['mean'])}, sobol at {last}: {_num(sobol30['mean'])}",
        }
    )
    return out


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def analyse(studies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json's figures from the study rows (:func:`study_row`)."""
    rows = method_rows(studies)
    return {"methods": rows, "comparisons": comparisons(studies), "targets": targets(rows)}


# -- report -----------------------------------------------------------------------------------------


def retrained_dev(seed: int, n_layers: int) -> dict[str, float]:
    """The CPU experiment's retraining of its fronts: configuration key -> dev accuracy with ``seed``."""
    data = gx.load_json(CPU_RESULTS / "retrain.json")
    return {
        gx.config_key(row["config"], n_layers): row["dev"]["accuracy"]
        for row in data["rows"]
        if row["seed"] == seed and row.get("dev")
    }


def reused_machine() -> dict[str, Any]:
    """Where the CPU experiment ran (its records predate a record's ``machine``)."""
    meta = gx.load_json(CPU_RESULTS / "meta.json")
    return {"device": meta["device_name"], "cpu_count": meta["machine"]["cpu_count"]}


def report(plan: Mapping[str, Any], out: Path, publish: Path, doc: Path | None, dry: bool) -> dict[str, Any]:
    """summary.json, plots and the docs section from the finished records in ``out/studies``."""
    from warm_start import majority_search_metric

    from autopeft.tasks import resolve_task

    records = gx.load_records(out, ALL_KEYS)
    task = "sst2"
    metric = resolve_task(task).metric
    majority = {
        "search": majority_search_metric(task, plan["data"], plan["training"]),
        "dev": bl_majority_dev(task, plan["data"], metric),
    }
    studies = []
    for k in ALL_KEYS:
        if k not in records:
            continue
        record = dict(records[k])
        retrained = None
        if record.get("reused_from"):
            record.setdefault("machine", reused_machine())
            retrained = retrained_dev(record["body"]["training"]["seed"], gx.n_layers_of(record))
        studies.append(study_row(k, record, majority, metric, retrained))
    meta = gx.load_json(out / "methods-meta.json")
    result = {
        "dry_run": dry,
        "task": task,
        "metric": metric,
        "majority": majority,
        "budget": {k: v for k, v in plan["training"].items()} | {"trials": plan["trials"], "workers": plan["workers"]},
        "n_initial": plan["n_initial"],
        "meta": meta,
        "missing": [k for k in ALL_KEYS if k not in records],
        "studies": studies,
        **analyse(studies),
    }
    publish.mkdir(parents=True, exist_ok=True)
    gx.save_json(publish / "summary.json", result)
    plots = make_plots(result, publish, "dry run: meaningless numbers" if dry else None)
    if doc is not None:
        write_section(doc, section(result, plots, doc, publish))
    gx.say_targets(result["targets"], "[dry run: meaningless] " if dry else "")
    gx.say(
        f"report: {len(studies)} of {len(ALL_KEYS)} studies; wrote {publish / 'summary.json'}"
        + (f" and {doc}" if doc else "")
    )
    return result


def bl_majority_dev(task: str, data: str, metric: str) -> float:
    """The dev metric of always predicting the most frequent training label."""
    return float(gx.bl.majority_dev_metrics(task, data)[metric])


def make_plots(result: Mapping[str, Any], publish: Path, note: str | None) -> dict[str, Path]:
    """Per space: hypervolume over trials per method (mean over seeds, the band one std, each seed thin),
    on the search split and above its majority class."""
    from plots import plot_hypervolume_bands

    paths = {}
    for space, methods in METHODS.items():
        rows = [r for r in result["studies"] if r["space"] == space]
        if not rows:
            continue
        for kind, field, floor in (
            ("search", "curve", None),
            ("above-majority", "above_majority_curve", result["majority"]["search"]),
        ):
            runs = {m: c for m in methods if (c := [r[field] for r in rows if r["method"] == m])}
            curves = {f"{m} ({len(c)} seed{'s' if len(c) != 1 else ''})": c for m, c in runs.items()}
            colours = [COLOURS[m] for m in runs]
            title = f"SST-2, {space} space: hypervolume over trials (mean ± std over study seeds)"
            if floor is not None:
                title += "\nabove the majority class of the search split, head-only point left out"
            path = publish / f"hypervolume-{space}{'' if kind == 'search' else '-above-majority'}.png"
            paths[f"{space}-{kind}"] = plot_hypervolume_bands(
                path, curves, title=title, note=note, metric_floor=floor, colours=colours
            )
    return paths


def section(result: Mapping[str, Any], plots: Mapping[str, Path], doc: Path, publish: Path) -> str:
    """The "Methods on real data" section of docs/results.md."""
    studies, budget, maj = result["studies"], result["budget"], result["majority"]
    last = TRIAL_COUNTS[-1]
    new = [r for r in studies if not r["reused_from"]]
    seconds = [r["trial_seconds_median"] for r in new if r["trial_seconds_median"]]
    where = _where(new)
    started = min((r["created"] for r in new if r["created"]), default=None)
    finished = max((r["finished"] for r in new if r["finished"]), default=None)
    when = f", {started} to {finished}" if started and finished else ""
    share = {
        reused: [
            r["scoring_share_median"] for r in studies if bool(r["reused_from"]) == reused and r["scoring_share_median"]
        ]
        for reused in (True, False)
    }
    cost = (
        f" Scoring took a median {100 * statistics.median(share[False]):.0f}% of a trial's seconds with dev "
        f"(this run's studies) against {100 * statistics.median(share[True]):.0f}% without (the reused ones)."
        if share[True] and share[False]
        else ""
    )
    missing = ", ".join(f"`{k}`" for k in result["missing"])
    blocks = [
        f"{BEGIN}\n## Methods on real data (issue 32)",
        (
            "gp against Optuna's multi-objective TPE (`tpe`, a method of the study since issue 32) and Sobol on "
            "SST-2, through the real service (`autopeft serve`, two `autopeft worker --device cpu` of one thread), "
            f"at the CPU results budget: {budget.get('max_steps')} steps of batch {budget['batch_size']}, max "
            f"length {budget['max_length']}, the `short` learning rates per family, {budget['trials']} trials a "
            f"study, {budget['workers']} workers; objective on {budget.get('max_search_examples')} held-out "
            f"training examples; gp and tpe start from the same {result['n_initial']} Sobol trials as the sobol "
            "study of their seed. Study seed s trains with seed s. The studies of a batch share the two workers "
            "(gp and sobol of seed 1; tpe of seeds 0 and 1; gp, sobol and tpe of seed 2; gp and tpe of a seed on the "
            "`full` space)."
        ),
        (
            f"{len(studies)} of {len(ALL_KEYS)} studies finished{f'; not finished: {missing}' if missing else ''}. "
            + (
                f"Measured on {where}, under load (other work shared the two cores: median trial "
                f"{_range(seconds)} s, against 72-81 s in the CPU experiment){when}. "
                if new
                else "No study of this run has finished yet. "
            )
            + "gp and sobol of seed 0 on the `autopeft` space are the CPU experiment's studies "
            f"(`benchmarks/results/cpu`, the same budget, measured on {_where(r for r in studies if r['reused_from'])})"
            ", reused."
        ),
        "\n".join(
            [
                (
                    "- **Search hypervolume**: of (search accuracy, -log10 trained share) against (0, 100%), as the "
                    "server computes it, after the first 10, 20 and 30 trials (by trial number)."
                ),
                (
                    "- **Above the majority class**: the same against the majority class of the search split "
                    f"({maj['search']:.3f}) instead of 0, without the head-only configuration (`{{}}`, on every front): "
                    "what the search found beyond the point every study shares."
                ),
                (
                    f"- **Dev hypervolume at {last}**: each study's front at {last} trials scored on the SST-2 dev file "
                    "with the study's training seed. Every trial of this run scored dev after training "
                    "(`evaluate_dev`, never optimised); training is deterministic, so that is the score retraining the "
                    "front would give (the CPU experiment's retraining reproduced every search metric of its seed-0 "
                    "fronts exactly, and its seed-0 dev scores stand for the two reused fronts). One seed per front: "
                    "the spread comes from the study seeds. Above the majority class: against the dev majority class "
                    f"({maj['dev']:.3f}), head-only left out.{cost}"
                ),
            ]
        ),
        "Commands:",
        "\n".join(
            [
                "```",
                f"{COMMAND}   # resumable; finished studies are restored from benchmarks/results/methods",
                "python benchmarks/methods.py --out runs/methods --phases report   # this section, summary.json, plots",
                "```",
            ]
        ),
        "### Per method (mean ± std over study seeds)",
        _table(
            ["space", "method", "seeds", *(_label(m) for m in MEASURES)],
            [
                [m["space"], m["method"], ", ".join(map(str, m["seeds"])), *(_mean_cell(m[x]) for x in MEASURES)]
                for m in result["methods"]
                if m["seeds"]
            ],
        ),
        "### Per study",
        _table(
            ["space", "method", "seed", "completed", "failed", *(_label(m) for m in MEASURES[:3]), _label(MEASURES[5])]
            + [_label(m) for m in MEASURES[6:]]
            + ["front", "proposed by", "median trial s"],
            [_study_cells(r) for r in studies],
        ),
        "### gp against each peer, seed by seed",
        (
            "gp minus the peer for each study seed both have finished; the sign count says in how many seeds gp is "
            "ahead, behind or level."
        ),
        _table(
            ["space", "peer", "measure", *(f"seed {s}" for s in SEEDS), "gp ahead / behind / level"],
            [_comparison_cells(c, m) for c in result["comparisons"] if c["seeds"] for m in MEASURES],
        ),
        "### Targets of the issue (evaluated, not asserted)",
        _table(
            ["target", "met", "numbers"],
            [
                [t["target"], {True: "yes", False: "**no**", None: "not yet measured"}[t["met"]], t["detail"]]
                for t in result["targets"]
            ],
        ),
        *(f"![{name}]({os.path.relpath(path, doc.parent)})" for name, path in plots.items()),
        (
            f"Figures as JSON: [`summary.json`]({os.path.relpath(publish / 'summary.json', doc.parent)}) (a list "
            "`studies`, one entry per study, with its hypervolumes, front and curves; `methods`, `comparisons`, "
            "`targets`); every study's record (all its trials, their dev scores and curves) beside it."
            f"\n{END}\n"
        ),
    ]
    return "\n\n".join(blocks)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _study_cells(r: Mapping[str, Any]) -> list[Any]:
    """A row of the per-study table."""
    measures = [_num(r[m]) for m in (*MEASURES[:3], MEASURES[5], *MEASURES[6:])]
    front = len(r["front"]) if r["front"] is not None else "-"
    by = ", ".join(f"{k} {v}" for k, v in sorted(r["sources"].items()))
    median = f"{r['trial_seconds_median']:.0f}" if r["trial_seconds_median"] else "-"
    seed = f"{r['seed']}{' (reused)' if r['reused_from'] else ''}"
    return [r["space"], r["method"], seed, r["completed"], r["failed"], *measures, front, by, median]


def _comparison_cells(c: Mapping[str, Any], measure: str) -> list[Any]:
    """A row of the gp-against-peer table: one measure, its difference per seed and the sign count."""
    d = c[measure]["differences"]
    cells = [f"{d[str(s)]:+.4f}" if str(s) in d else "-" for s in SEEDS]
    count = f"{c[measure]['gp_ahead']} / {c[measure]['gp_behind']} / {c[measure]['level']}"
    return [c["space"], c["peer"], _label(measure), *cells, count]


def _where(rows: Iterable[Mapping[str, Any]]) -> str:
    """The machines that ran ``rows``' studies, as "**CPU: X** (2 cores)"."""
    machines = sorted({(r["machine"]["device"], r["machine"]["cpu_count"]) for r in rows if r.get("machine")})
    return ", ".join(f"**{d}** ({c} cores)" for d, c in machines) or "an unrecorded machine"


def _range(values: Sequence[float]) -> str:
    return "-" if not values else f"{min(values):.0f}-{max(values):.0f}"


def _mean_cell(entry: Mapping[str, Any]) -> str:
    values = entry["values"]
    if not values:
        return "-"
    return f"{entry['mean']:.4f}" if len(values) == 1 else f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def _label(measure: str) -> str:
    """A measure's name as the tables say it."""
    return measure.replace("_hypervolume_", " ").replace("_", " ")


def write_section(doc: Path, text: str) -> None:
    """Replace the section between its markers, or put it right after the "Results on CPU" section."""
    old = doc.read_text() if doc.exists() else ""
    if (BEGIN in old and END in old) or gx.CPU_END not in old:
        gx.write_marked_section(doc, text, BEGIN, END)
        return
    cut = old.index(gx.CPU_END) + len(gx.CPU_END)
    doc.write_text(old[:cut] + "\n\n" + text.rstrip("\n") + "\n" + old[cut:])


if __name__ == "__main__":
    sys.exit(main())
