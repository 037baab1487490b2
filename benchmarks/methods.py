"""Issue 32: gp against TPE and Sobol on real data, over 3 study seeds (SST-2 at the CPU budget).

    # the real run on CPU: 13 studies of 30 trials (the CPU experiment ran a pair of them in 39 min on
    # 2 cores; longer under load); resumable: the same command continues where it stopped
    python -m benchmarks.methods --out runs/methods --time-limit 900
    # only some studies (e.g. before a method exists on the server), or only the report
    python -m benchmarks.methods --out runs/methods --studies autopeft-gp-seed1 autopeft-sobol-seed1
    python -m benchmarks.methods --out runs/methods --phases report
    # after a stopped run: record the unfinished studies as they stand, and report them too
    python -m benchmarks.methods --out runs/methods --phases snapshot report
    # a dry run of the pipeline on the test fixtures (a few minutes; meaningless numbers)
    python -m benchmarks.methods --dry-run --out /tmp/methods_dry

The protocol of the CPU results experiment (``python -m benchmarks.gpu_experiment --profile cpu``): the real
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
checkout restores them instead of training again. ``--phases snapshot`` records the studies a stopped
run left unfinished as they stand (their trials up to the first one still open), under ``partial/``
beside the finished ones; the report shows them, marked unfinished, and never restores them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autopeft.trial_state import FINISHED_STATES
from benchmarks.analysis.methods import (
    ALL_KEYS,
    MEASURES,
    METHODS,
    SEEDS,
    TRIAL_COUNTS,
    analyse,
    number,
    parse_key,
    study_row,
)
from benchmarks.analysis.warm_start import majority_search_metric
from benchmarks.experiment.plan import make_plan as experiment_plan
from benchmarks.experiment.plan import parse_args as experiment_args
from benchmarks.experiment.plan import search_body
from benchmarks.experiment.report import CPU_END
from benchmarks.harness.analysis import config_key, n_layers_of
from benchmarks.harness.phases import exit_code, say
from benchmarks.harness.records import (
    DOCS,
    RESULTS,
    ROOT,
    bench_meta,
    load_json,
    machine_of,
    now,
    publish_records,
    read_records,
    restore_records,
    save_json,
)
from benchmarks.harness.reference import majority_dev_metrics
from benchmarks.harness.report import render, say_targets, table, write_marked_section
from benchmarks.harness.services import Service
from benchmarks.harness.studies import run_batch, study_record

#: Studies that run side by side on the two workers, by batch name, in order (keys: :func:`key`).
#: The three methods of seed 1 come first and run under the same load, so that a partial run already
#: compares all three on one seed; tpe of seed 0 comes next, so that gp meets each peer on two seeds.
BATCHES: dict[str, tuple[str, ...]] = {
    "autopeft-seed1": ("autopeft-gp-seed1", "autopeft-sobol-seed1", "autopeft-tpe-seed1"),
    "autopeft-tpe": ("autopeft-tpe-seed0",),
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
#: One colour per method in every plot.
COLOURS = {"gp": "tab:blue", "tpe": "tab:green", "sobol": "tab:orange"}
RECORDS = RESULTS / "methods"
CPU_RESULTS = RESULTS / "cpu"
DOC = DOCS / "results.md"
BEGIN, END = "<!-- methods on real data: python -m benchmarks.methods -->", "<!-- end of the methods on real data -->"
COMMAND = "python -m benchmarks.methods --out runs/methods --time-limit 900"
REPORT_COMMAND = "python -m benchmarks.methods --out runs/methods --phases report"
#: Where unfinished studies are recorded as they stand (never restored as finished).
PARTIAL = "partial"


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
    p.add_argument("--phases", nargs="+", choices=("run", "snapshot", "report"), default=["run", "report"])
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
    plan = experiment_plan(experiment_args(base + ["--out", str(out), "--searches", "sst2-autopeft-gp"]))
    plan["trials"] = args.trials or (6 if args.dry_run else 30)
    plan["studies"] = list(args.studies or ALL_KEYS)
    plan["reuse"] = not args.dry_run and plan["trials"] == 30
    return plan


def study_body(plan: Mapping[str, Any], k: str) -> dict[str, Any]:
    """One search study: the CPU experiment's body for ``space`` and ``method``, with the study seed as both
    the optimiser's and the training seed, and the dev file scored after each trial."""
    space, method, seed = parse_key(k)
    body = search_body(plan, k, space, method)
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
            record = load_json(CPU_RESULTS / name)
            save_json(dst, record | {"reused_from": f"benchmarks/results/cpu/{name}"})
            restored.append(k)
    if restored:
        say(f"reused the CPU experiment's studies as {restored}")
    return restored


def run(plan: dict[str, Any], out: Path, deadline: float | None, records: Path | None) -> None:
    """The chosen studies, a batch at a time; with ``records``, finished studies are restored from and
    published to it (a later checkout resumes there)."""
    if plan["reuse"]:
        restore_reused(out)
    batches = batches_of(plan["studies"])
    bodies = {k: study_body(plan, k) for batch in batches.values() for k in batch}
    if records is not None:
        restore_records(records, out, bodies)
    with Service(out) as svc:
        for name, batch in batches.items():
            run_batch(svc, plan, out, name, {k: bodies[k] for k in batch}, False, deadline)
            if records is not None:
                publish_records(records, out, batch)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda deadline: run_phases(args, deadline), args.time_limit)


def run_phases(args: argparse.Namespace, deadline: float | None) -> None:
    plan = make_plan(args)
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    bench_meta(out / "methods-meta.json", plan)
    records = args.records or (None if args.dry_run else RECORDS)
    if "run" in args.phases:
        run(plan, out, deadline, records)
    if "snapshot" in args.phases:
        snapshot(plan, out, records)
    if "report" in args.phases:
        publish = args.publish or records or out
        doc = args.doc if args.doc is not None else (None if args.dry_run else DOC)
        report(plan, out, publish, doc, bool(args.dry_run))


def snapshot(plan: Mapping[str, Any], out: Path, records: Path | None) -> list[str]:
    """Record the plan's studies that were created but have not finished, as they stand: their trials up to
    the first one still open (so a curve after k trials is what the study had after k), in
    ``out/partial`` and ``records/partial``. Returns their keys."""
    studies = out / "studies"
    folders = [folder for folder in (out, records) if folder is not None]
    finished = {k for k in plan["studies"] if (studies / f"{k}.json").exists()}
    keys = [k for k in plan["studies"] if k not in finished and (studies / f"{k}.id.json").exists()]
    for folder in folders:  # a study finished since an earlier snapshot is no longer partial
        for k in finished:
            (folder / PARTIAL / f"{k}.json").unlink(missing_ok=True)
    if not keys:
        say("snapshot: every study of the run that was started has finished")
        return []
    machine = machine_of(plan["device"])
    with Service(out) as svc:
        for k in keys:
            saved = load_json(studies / f"{k}.id.json")
            batch = next((b for b, ks in BATCHES.items() if k in ks), None)
            record = study_record(svc, k, saved["id"], saved["body"], batch=batch, workers=plan["workers"])
            record["trials"] = settled_prefix(record["trials"])  # the study as it stood after its first k trials
            numbers = {t["number"] for t in record["trials"]}
            record["pareto"] |= {"data": [t for t in record["pareto"]["data"] if t.get("number") in numbers]}
            record |= {"machine": machine, "finished": None, "partial": True, "snapshot": now()}
            for folder in folders:
                save_json(folder / PARTIAL / f"{k}.json", record)
            say(f"snapshot: {k} has {len(record['trials'])} settled trials (study {saved['id']}, unfinished)")
    return keys


def settled_prefix(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``trials`` by number up to the first one that is not over (queued or running)."""
    prefix = []
    for t in sorted(trials, key=lambda t: t["number"]):
        if t["state"] not in FINISHED_STATES:
            break
        prefix.append(t)
    return prefix


def unfinished_records(folder: Path, finished: Mapping[str, Any]) -> dict[str, Any]:
    """The partial records under ``folder/partial`` of studies without a finished record."""
    return {k: r for k, r in read_records(folder / PARTIAL, ALL_KEYS).items() if k not in finished}


# -- report -----------------------------------------------------------------------------------------


def retrained_dev(seed: int, n_layers: int) -> dict[str, float]:
    """The CPU experiment's retraining of its fronts: configuration key -> dev accuracy with ``seed``."""
    data = load_json(CPU_RESULTS / "retrain.json")
    return {
        config_key(row["config"], n_layers): row["dev"]["accuracy"]
        for row in data["rows"]
        if row["seed"] == seed and row.get("dev")
    }


def reused_machine() -> dict[str, Any]:
    """Where the CPU experiment ran (its records predate a record's ``machine``)."""
    meta = load_json(CPU_RESULTS / "meta.json")
    return {"device": meta["device_name"], "cpu_count": meta["machine"]["cpu_count"]}


def report(plan: Mapping[str, Any], out: Path, publish: Path, doc: Path | None, dry: bool) -> dict[str, Any]:
    """summary.json, plots and the docs section from the finished records in ``out/studies`` (the majority
    classes scored on the plan's data)."""
    from autopeft.tasks import resolve_task

    task = "sst2"
    metric = resolve_task(task).metric
    majority = {
        "search": majority_search_metric(task, plan["data"], plan["training"]),
        "dev": bl_majority_dev(task, plan["data"], metric),
    }
    records = read_records(out / "studies", ALL_KEYS)
    records |= unfinished_records(out, records)
    result = build_result(plan, records, load_json(out / "methods-meta.json"), majority, metric, dry)
    write_report(result, publish, doc)
    say_targets(result["targets"], "[dry run: meaningless] " if dry else "")
    say(
        f"report: {len(result['studies'])} of {len(ALL_KEYS)} studies; wrote {publish / 'summary.json'}"
        + (f" and {doc}" if doc else "")
    )
    return result


def build_result(
    plan: Mapping[str, Any],
    records: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    majority: Mapping[str, float],
    metric: str,
    dry: bool,
) -> dict[str, Any]:
    """summary.json: the budget, where it ran, a row per finished study (:func:`study_row`) and the figures
    over them (dev ``metric``), against the ``majority`` classes of the search split and of dev."""
    studies = []
    for k in ALL_KEYS:
        if k not in records:
            continue
        record = dict(records[k])
        retrained = None
        if record.get("reused_from"):
            record.setdefault("machine", reused_machine())
            retrained = retrained_dev(record["body"]["training"]["seed"], n_layers_of(record))
        studies.append(study_row(k, record, majority, metric, retrained) | {"partial": bool(record.get("partial"))})
    return {
        "dry_run": dry,
        "task": "sst2",
        "metric": metric,
        "majority": dict(majority),
        "budget": {k: v for k, v in plan["training"].items()} | {"trials": plan["trials"], "workers": plan["workers"]},
        "n_initial": plan["n_initial"],
        "meta": meta,
        "missing": [k for k in ALL_KEYS if k not in records or records[k].get("partial")],
        "studies": studies,
        **analyse(studies),
    }


def write_report(result: Mapping[str, Any], publish: Path, doc: Path | None) -> dict[str, Path]:
    """summary.json and the plots in ``publish``, the section in ``doc``; returns the plots."""
    publish.mkdir(parents=True, exist_ok=True)
    save_json(publish / "summary.json", result)
    plots = make_plots(result, publish, "dry run: meaningless numbers" if result["dry_run"] else None)
    if doc is not None:
        write_section(doc, section(result, plots, doc, publish))
    return plots


def republish(into: Path) -> list[Path]:
    """summary.json, its plots and the section of docs/results.md again, from the published study records
    (and the CPU experiment's reused ones), under ``into`` laid out as the repository (its page updated in
    place, a copy of this checkout's when there is none). No training and no data: the majority classes
    are the ones the report measured. Returns the JSON and the page."""
    recorded = load_json(RECORDS / "summary.json")
    records = read_records(RECORDS, ALL_KEYS)
    records |= unfinished_records(RECORDS, records)
    for k, name in REUSED.items():
        records.setdefault(k, load_json(CPU_RESULTS / name) | {"reused_from": f"benchmarks/results/cpu/{name}"})
    budget = recorded["budget"]
    plan = {
        "training": {k: v for k, v in budget.items() if k not in ("trials", "workers")},
        "trials": budget["trials"],
        "workers": budget["workers"],
        "n_initial": recorded["n_initial"],
    }
    result = build_result(
        plan, records, recorded["meta"], recorded["majority"], recorded["metric"], recorded["dry_run"]
    )
    doc = into / DOC.relative_to(ROOT)
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(DOC.read_text())
    publish = into / RECORDS.relative_to(ROOT)
    write_report(result, publish, doc)
    return [publish / "summary.json", doc]


def bl_majority_dev(task: str, data: str, metric: str) -> float:
    """The dev metric of always predicting the most frequent training label."""
    return float(majority_dev_metrics(task, data)[metric])


def make_plots(result: Mapping[str, Any], publish: Path, note: str | None) -> dict[str, Path]:
    """Per space: hypervolume over trials per method (mean over seeds, the band one std, each seed thin),
    on the search split and above its majority class."""
    from benchmarks.plots import plot_hypervolume_bands

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
    """The "Methods on real data" section of docs/results.md (``benchmarks/templates/methods_section.md.j2``)."""
    studies = result["studies"]
    new = [r for r in studies if not r["reused_from"]]
    seconds = [r["trial_seconds_median"] for r in new if r["trial_seconds_median"]]
    started = min((r["created"] for r in new if r["created"]), default=None)
    finished = max((r["finished"] for r in new if r["finished"]), default=None)
    share = {
        reused: [
            r["scoring_share_median"] for r in studies if bool(r["reused_from"]) == reused and r["scoring_share_median"]
        ]
        for reused in (True, False)
    }
    per_method = [
        [m["space"], m["method"], ", ".join(map(str, m["seeds"])), *(_mean_cell(m[x]) for x in MEASURES)]
        for m in result["methods"]
        if m["seeds"]
    ]
    per_study = ["space", "method", "seed", "completed", "failed", *(_label(m) for m in MEASURES[:3])]
    per_study += [_label(MEASURES[5]), *(_label(m) for m in MEASURES[6:]), "front", "proposed by", "median trial s"]
    met = {True: "yes", False: "**no**", None: "not yet measured"}
    return render(
        "methods_section.md.j2",
        begin=BEGIN,
        end=END,
        budget=result["budget"],
        n_initial=result["n_initial"],
        finished=sum(not r["partial"] for r in studies),
        unfinished=", ".join(f"`{r['key']}` ({r['trials']} settled trials)" for r in studies if r["partial"]),
        total=len(ALL_KEYS),
        missing=", ".join(f"`{k}`" for k in result["missing"]),
        measured={
            "where": _where(new),
            "seconds": _range(seconds),
            "when": f", {started} to {finished}" if started and finished else "",
        }
        if new
        else None,
        reused_where=_where(r for r in studies if r["reused_from"]),
        majority=result["majority"],
        last=TRIAL_COUNTS[-1],
        cost=(statistics.median(share[False]), statistics.median(share[True]))
        if share[True] and share[False]
        else None,
        command=COMMAND,
        report_command=REPORT_COMMAND,
        methods_table=table(["space", "method", "seeds", *(_label(m) for m in MEASURES)], per_method),
        studies_table=table(per_study, [_study_cells(r) for r in studies]),
        comparisons_table=table(
            ["space", "peer", "measure", *(f"seed {s}" for s in SEEDS), "gp ahead / behind / level"],
            [_comparison_cells(c, m) for c in result["comparisons"] if c["seeds"] for m in MEASURES],
        ),
        targets_table=table(
            ["target", "met", "numbers"], [[t["target"], met[t["met"]], t["detail"]] for t in result["targets"]]
        ),
        plots=[(name, os.path.relpath(path, doc.parent)) for name, path in plots.items()],
        summary_link=os.path.relpath(publish / "summary.json", doc.parent),
    )


def _study_cells(r: Mapping[str, Any]) -> list[Any]:
    """A row of the per-study table."""
    measures = [number(r[m]) for m in (*MEASURES[:3], MEASURES[5], *MEASURES[6:])]
    front = len(r["front"]) if r["front"] is not None else "-"
    by = ", ".join(f"{k} {v}" for k, v in sorted(r["sources"].items()))
    median = f"{r['trial_seconds_median']:.0f}" if r["trial_seconds_median"] else "-"
    seed = f"{r['seed']}{' (reused)' if r['reused_from'] else ''}{' (unfinished)' if r['partial'] else ''}"
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
    if (BEGIN in old and END in old) or CPU_END not in old:
        write_marked_section(doc, text, BEGIN, END)
        return
    cut = old.index(CPU_END) + len(CPU_END)
    doc.write_text(old[:cut] + "\n\n" + text.rstrip("\n") + "\n" + old[cut:])


if __name__ == "__main__":
    sys.exit(main())
