"""Issue 19: does a study warm-started from an SST-2 study find a second task's front sooner? Real training on CPU.

    # the real run on CPU (about 75 min on 2 cores; resumable: the same command continues where it stopped)
    python -m benchmarks.warm_start --out runs/warm_start --time-limit 120 \\
        --source-study-file benchmarks/results/cpu/study-sst2-autopeft-gp.json
    # the "same search again" case: SST-2 on another sample at the source's budget (about 3 h on 2 cores)
    python -m benchmarks.warm_start --target sst2-sample --out runs/warm_start-sst2-sample --time-limit 120 \\
        --source-study-file benchmarks/results/cpu/study-sst2-autopeft-gp.json
    # the same with MRPC as the second task (about 7.5 h on 2 cores: a GPU's run)
    python -m benchmarks.warm_start --target mrpc --out runs/warm_start-mrpc \\
        --source-study-file benchmarks/results/cpu/study-sst2-autopeft-gp.json
    # a dry run of the pipeline on the test fixtures (a few minutes; meaningless numbers)
    python -m benchmarks.warm_start --dry-run --out /tmp/ws_dry

The protocol of the CPU results experiment (``python -m benchmarks.gpu_experiment --profile cpu``): the
real service (``autopeft serve``, two ``autopeft worker --device cpu`` of one thread), the bundled
MiniLM, the ``autopeft`` space, gp with 8 Sobol trials, the family learning rates of the ``short``
preset, the objective on 500 held-out training examples, 30 trials a study.

1. ``source``: a gp study on SST-2 at that experiment's budget (200 steps of batch 16, max length 64),
   or, with ``--source-study-file``, a study record that experiment saved, imported into this server
   through its API (a study whose baselines are the record's completed configurations, each completed
   with its recorded result: what a warm start reads of an earlier study is exactly that).
2. ``run``: for each seed, two gp studies on the second task side by side (same workers, same load),
   identical but for ``"warm_start": {"studies": [source]}`` in one of them. The second task
   (``--target``, see :data:`TARGETS`):

   - ``sst2-low`` (the CPU default): SST-2 in a low-resource regime, 1,000 training examples drawn
     with another split seed (so another held-out search split too), 100 steps. The issue allows
     SST-2 at another budget or training subset when MRPC cannot be ranked on CPU: MRPC clears its
     majority class only at 300 steps of max length 128 (full fine-tuning +3.1 F1 points, the PEFT
     baselines +0.2 to +2.0, within 1 to 2 standard deviations), about 5 min a trial on one core,
     so 180 trials take 7.5 h and their hypervolumes would mostly measure noise.
   - ``sst2-sample``: SST-2 at the source's budget (200 steps) on another sample of the task: 4,000
     training examples drawn with another split seed, so another held-out search split. A study run again
     on new data, without the budget shift of ``sst2-low`` (where the source's smallest configurations
     no longer clear the majority class).
   - ``mrpc``: MRPC at its CPU budget (300 steps, max length 128).
3. ``report``: hypervolume over trials of each study (its own trials; the warm-start trials count, they
   are trials of the study), how many trials the warm study needs to reach the cold study's hypervolume
   at 30 trials, the final hypervolumes, and whether the budget ranks configurations (the spread of the
   cold studies' scores over the majority class of the held-out split);
   ``benchmarks/results/warm_start.json``, a plot, and the measured section of docs/warm_start.md.
   The issue's target is checked, not asserted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.analysis.warm_start import (
    ARMS,
    BUDGET,
    WITHIN,
    analyse,
    completed,
    key,
    machine_runs,
    majority_search_metric,
    source_ranking,
)
from benchmarks.experiment.plan import make_plan as experiment_plan
from benchmarks.experiment.plan import parse_args as experiment_args
from benchmarks.experiment.plan import search_body, training_with
from benchmarks.harness.phases import ExperimentError, exit_code, say
from benchmarks.harness.records import (
    DOCS,
    RESULTS,
    ROOT,
    bench_meta,
    load_json,
    now,
    publish_records,
    read_records,
    restore_records,
    save_json,
)
from benchmarks.harness.report import render, say_targets, write_marked_section
from benchmarks.harness.services import Service
from benchmarks.harness.studies import run_batch

SOURCE_KEY = "ws-source-sst2"
#: The second tasks: its task name, its budget over the plan's training, and a line for the report.
#: MRPC's budget is the CPU profile's (gpu_experiment's ``task_budgets`` where it has them).
TARGETS: dict[str, dict[str, Any]] = {
    "sst2-low": {
        "task": "sst2",
        "budget": {"max_steps": 100, "max_train_examples": 1000, "split_seed": 1},
        "label": "SST-2, low-resource (1,000 training examples of another split seed, 100 steps)",
    },
    "sst2-sample": {
        "task": "sst2",
        "budget": {"max_train_examples": 4000, "split_seed": 1},
        "label": "SST-2, another sample (4,000 training examples of another split seed, the source's 200 steps)",
    },
    "mrpc": {
        "task": "mrpc",
        "budget": {"max_steps": 300, "max_length": 128},
        "label": "MRPC (300 steps, max length 128)",
    },
}
DEFAULT_TARGET = "sst2-low"
#: The finished studies' records, per target: a fresh checkout resumes from them.
RECORDS = RESULTS / "warm_start"
DOC = DOCS / "warm_start.md"
BEGIN, END = "<!-- WS_BENCHMARK_BEGIN -->", "<!-- WS_BENCHMARK_END -->"
SOURCE_FILE = "benchmarks/results/cpu/study-sst2-autopeft-gp.json"


def suffix(target: str) -> str:
    """The file-name suffix of a target's outputs: none for the default one."""
    return "" if target == DEFAULT_TARGET else f"-{target}"


def published(target: str) -> tuple[Path, Path]:
    """The target's figures as JSON and its hypervolume plot, in benchmarks/results."""
    return RESULTS / f"warm_start{suffix(target)}.json", RESULTS / f"warm_start{suffix(target)}_hypervolume.png"


def markers(target: str) -> tuple[str, str]:
    """The markers of the target's measured section of docs/warm_start.md."""
    if target == DEFAULT_TARGET:
        return BEGIN, END
    return f"<!-- WS_BENCHMARK_BEGIN {target} -->", f"<!-- WS_BENCHMARK_END {target} -->"


def command(target: str) -> str:
    """The command that measures ``target`` (and resumes it)."""
    option = "" if target == DEFAULT_TARGET else f"--target {target} "
    return (
        f"python -m benchmarks.warm_start {option}--out runs/warm_start{suffix(target)} --time-limit 120 "
        f"--source-study-file {SOURCE_FILE}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="test fixtures, tiny budgets: checks the pipeline")
    p.add_argument("--out", type=Path, default=None, help="results folder (default runs/warm_start)")
    p.add_argument("--trials", type=int, default=None, help=f"trials of each study (default {BUDGET}; dry run 6)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="study seeds (default 0 1 2; dry run 0)")
    p.add_argument("--data", default=None, help="GLUE root with SST-2/ and MRPC/ (default: the CPU experiment's)")
    p.add_argument(
        "--target", choices=list(TARGETS), default=DEFAULT_TARGET, help=f"the second task (default {DEFAULT_TARGET})"
    )
    p.add_argument(
        "--source-study-file",
        type=Path,
        default=None,
        metavar="JSON",
        help="a study record of benchmarks.gpu_experiment (e.g.\n"
        "benchmarks/results/cpu/study-sst2-autopeft-gp.json) to import as the source instead of running an SST-2 study",
    )
    p.add_argument("--phases", nargs="+", choices=("source", "run", "report"), default=["source", "run", "report"])
    p.add_argument("--time-limit", type=float, default=None, metavar="MIN", help="stop cleanly after MIN minutes")
    p.add_argument("--publish", type=Path, default=None, help="JSON of the figures (default: benchmarks/results)")
    p.add_argument("--doc", type=Path, default=None, help="page whose measured section is rewritten")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU results experiment's plan (its budget, workers, data), with this benchmark's settings."""
    base = ["--profile", "cpu"] + (["--dry-run"] if args.dry_run else []) + (["--data", args.data] if args.data else [])
    name = f"warm_start{suffix(args.target)}"
    out = args.out or (ROOT / "runs" / (f"{name}-dry" if args.dry_run else name))
    plan = experiment_plan(experiment_args(base + ["--out", str(out), "--searches", "sst2-autopeft-gp"]))
    plan["trials"] = args.trials or (6 if args.dry_run else BUDGET)
    plan["study_seeds"] = list(args.seeds if args.seeds is not None else ([0] if args.dry_run else [0, 1, 2]))
    target = TARGETS[args.target]
    budget = dict(target["budget"])
    if args.target == "mrpc":
        budget.update((plan.get("task_budgets") or {}).get("mrpc") or {})
    if args.dry_run:  # the fixtures' tiny budget, with the target's data choices
        budget = {k: v for k, v in budget.items() if k in ("split_seed",)}
    plan["target"] = {"name": args.target, "task": target["task"], "label": target["label"]}
    plan["target_training"] = training_with(plan["training"], budget)
    plan["source_file"] = str(args.source_study_file.resolve()) if args.source_study_file else None
    return plan


def target_body(plan: Mapping[str, Any], seed: int, arm: str, source_id: int) -> dict[str, Any]:
    """One study of the second task: gp on the autopeft space, the plan's search settings, warm or cold."""
    body = search_body(plan, key(seed, arm), "autopeft", "gp")
    task = plan["target"]["task"]
    body["name"] = f"issue 19 warm start: {plan['target']['name']} {arm}, seed {seed}" + (
        f" (from study {source_id})" if arm == "warm" else ""
    )
    body["task"] = {"name": task, "data_dir": plan["data"]}
    body["seed"] = seed
    body["training"] = {**plan["target_training"], "seed": seed}
    if arm == "warm":
        body["warm_start"] = {"studies": [source_id]}
    return body


# -- the source study -------------------------------------------------------------------------------


def import_body(record: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A study that holds a saved study's completed configurations as baselines (to be completed with
    their recorded results): the same task, model, space and training, no proposals of its own."""
    done = completed(record["trials"])
    if not done:
        raise ExperimentError(f"{path}: the study record holds no completed trial")
    source = record["body"]
    return {
        "name": f"issue 19 source: {source['name']} (imported from {Path(path).name})",
        "task": source["task"],
        "model": source.get("model"),
        "space": source.get("space", "autopeft"),
        "optimizer": {"method": "sobol"},
        "max_trials": len(done),
        "training": source.get("training", {}),
        "seed": source.get("seed", 0),
        "baselines": [{"config": t["config"], "label": f"#{t['number']}"} for t in done],
    }


def import_source(svc: Service, out: Path, path: str) -> int:
    """The imported source study's id (imported once; a later run finds it in the server's database)."""
    state = out / "studies" / f"{SOURCE_KEY}.imported.json"
    if state.exists():
        saved = load_json(state)
        study = svc.study_or_none(saved["id"])
        if saved["file"] == path and study is not None and study["state"] == "done":
            return int(saved["id"])
    record = load_json(Path(path))
    body = import_body(record, path)
    study = svc.create(body)
    by_label = {f"#{t['number']}": t for t in completed(record["trials"])}
    while True:
        r = svc.http.post("/api/v1/trials/claim", json={"worker_id": "importer", "study_id": study["id"]})
        if r.status_code == 204:
            break
        if r.status_code != 200:
            raise ExperimentError(f"importing {path}: claim answered {r.status_code} {r.text[:300]}")
        trial = r.json()
        t = by_label[trial["label"]]
        report = {"lease_token": trial["lease"]["token"], "metric": t["metric"], "peft_params": t["peft_params"]}
        report |= {"param_fraction": t["param_fraction"], "metrics": t.get("metrics"), "extra": t.get("extra")}
        done = svc.http.post(f"/api/v1/trials/{trial['id']}/complete", json=report)
        if done.status_code != 200:
            raise ExperimentError(f"importing {path}: trial {t['number']} refused: {done.text[:300]}")
    save_json(state, {"id": study["id"], "file": path, "created": now()})
    say(f"source: imported {len(by_label)} completed trials of {path} as study {study['id']}")
    return int(study["id"])


def source_study(plan: Mapping[str, Any], out: Path, svc: Service, deadline: float | None) -> int:
    """The SST-2 study the warm studies start from: imported, or run here with the plan's budget."""
    if plan["source_file"]:
        return import_source(svc, out, plan["source_file"])
    body = search_body(plan, SOURCE_KEY, "autopeft", "gp")
    body["name"] = "issue 19 warm start: source, SST-2 gp"
    record = run_batch(svc, plan, out, "ws-source", {SOURCE_KEY: body}, False, deadline)[SOURCE_KEY]
    return int(record["id"])


def run(plan: dict[str, Any], out: Path, phases: Sequence[str], deadline: float | None, published: Path | None) -> None:
    """The source, then cold and warm side by side for each seed. Finished batches are kept, and with
    ``published``, restored from and copied to it (a later checkout resumes there)."""
    with Service(out) as svc:
        source = source_study(plan, out, svc, deadline)
        save_json(out / "ws-source.json", {"id": source, "file": plan["source_file"]})
        if "run" not in phases:
            return
        bodies = {
            seed: {key(seed, arm): target_body(plan, seed, arm, source) for arm in ARMS} for seed in plan["study_seeds"]
        }
        if published is not None:
            restore_records(published, out, {k: b for batch in bodies.values() for k, b in batch.items()})
        for seed in plan["study_seeds"]:
            run_batch(svc, plan, out, f"ws-seed{seed}", bodies[seed], False, deadline)
            if published is not None:
                publish_records(published, out, list(bodies[seed]))


# -- report -----------------------------------------------------------------------------------------


def section(result: Mapping[str, Any]) -> str:
    """The measured section of docs/warm_start.md (``benchmarks/templates/warm_start_section.md.j2``)."""
    plan, meta, analysis = result["plan"], result["meta"], result["analysis"]
    t = plan["target_training"]
    mean = analysis["mean"]
    rows = [reach_row(str(r["seed"]), r, r) for r in analysis["seeds"]]
    rows.append(reach_row("mean curves", mean, None))
    above = [reach_row(str(r["seed"]), r["above_majority"], None) for r in analysis["seeds"] if "above_majority" in r]
    if "above_majority" in mean:
        above.append(reach_row("mean curves", mean["above_majority"], None))
    target = plan.get("target") or {"name": "mrpc", "label": "MRPC"}
    json_name, plot_name = (p.name for p in published(target["name"]))
    return render(
        "warm_start_section.md.j2",
        markers=markers(target["name"]),
        target=target,
        command=command(target["name"]),
        runs=runs_text(meta),
        versions=", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        source=Path(plan["source_file"]).name if plan["source_file"] else None,
        source_id=result["source"]["id"],
        plan=plan,
        t=t,
        ranking=ranking_text(analysis.get("ranking") or {}) + source_ranking_text(analysis),
        budget=analysis["budget"],
        within=WITHIN,
        rows="\n".join(rows),
        above="\n".join(above),
        targets=analysis["targets"],
        json_name=json_name,
        plot_name=plot_name.removesuffix(".png"),
    )


def reach_row(label: str, c: Mapping[str, Any], seed: Mapping[str, Any] | None) -> str:
    """A table row of :func:`compare`'s figures (and, for a seed's own row, its warm-start trials)."""
    seeded = f"{seed['warm_start_trials']} ({seed['warm_start_on_front']} on the front)" if seed else ""
    return (
        f"| {label} | {c['cold_at_budget']:.4f} | {c['warm_reaches_at'] or 'never'} | {c['cold_at_within']:.4f} | "
        f"{c['warm_at_within']:.4f} | {c['cold_final']:.4f} | {c['warm_final']:.4f} | {seeded} |"
    )


def ranking_text(r: Mapping[str, Any]) -> str:
    """One sentence: whether the budget ranks configurations."""
    if not r.get("trials"):
        return "No cold trial completed."
    text = (
        f"Ranking at this budget: the cold studies' {r['trials']} completed trials score "
        f"{r['min']:.3f} to {r['max']:.3f} (median {r['median']:.3f}) on the search split"
    )
    if r.get("majority") is not None:
        text += (
            f", where the majority class scores {r['majority']:.3f}; {r['clear_by_2_points']} of them clear it"
            " by 2 points"
            " or more"
        )
    return text + "."


def source_ranking_text(analysis: Mapping[str, Any]) -> str:
    """One sentence: how well the source's model ranks each study's own results (:func:`source_ranking`)."""
    taus = analysis.get("source_ranking")
    if not taus:
        return ""
    parts = []
    for arm in ARMS:
        shown = [
            f"{taus[k]:+.2f}" for s in analysis["seeds"] if (k := key(s["seed"], arm)) in taus and taus[k] is not None
        ]
        if shown:
            parts.append(f"{arm} {', '.join(shown)}")
    if not parts:
        return ""
    return (
        " The source ranks this task's results (Kendall's tau between a GP of the source study's metric and each "
        f"study's own results, by seed): {'; '.join(parts)}."
    )


def runs_text(meta: Mapping[str, Any]) -> str:
    """The section's "on MACHINE (N cores), START to END" for one machine or several."""
    runs = meta.get("runs") or [{**meta, "seeds": []}]
    parts = [
        f"**{r['device']}** ({r['cpu_count']} cores)"
        + (f" for seed{'s' if len(r['seeds']) > 1 else ''} {', '.join(map(str, r['seeds']))}" if len(runs) > 1 else "")
        + f", {r['started']} to {r['finished']}"
        for r in runs
    ]
    return ", and on ".join(parts)


def write_section(doc: Path, text: str, target: str = DEFAULT_TARGET) -> None:
    """Replace the target's measured section of ``doc`` (between its markers), or add it at the end."""
    write_marked_section(doc, text, *markers(target))


def report(
    plan: Mapping[str, Any], out: Path, publish: Path, plot: Path, doc: Path | None, dry: bool
) -> dict[str, Any]:
    """The report phase: the run's records analysed (the majority class scored on the plan's data, the
    source's GP fitted), then the figures as JSON, the plots and the page's section."""
    records = read_records(out / "studies", [key(seed, arm) for seed in plan["study_seeds"] for arm in ARMS])
    target = plan.get("target") or {"task": "mrpc"}
    majority = majority_search_metric(target["task"], plan["data"], plan["target_training"])
    source_record = (
        load_json(Path(plan["source_file"]))
        if plan["source_file"]
        else read_records(out / "studies", [SOURCE_KEY]).get(SOURCE_KEY)
    )
    ranks = source_ranking(source_record, records) if source_record is not None else None
    meta, source = load_json(out / "ws-meta.json"), load_json(out / "ws-source.json")
    result = build_result(plan, records, meta, source, majority, ranks, dry)
    write_report(result, publish, plot, doc)
    say_targets(result["analysis"]["targets"], "[dry run: meaningless] " if dry else "")
    say(f"report: wrote {publish}" + (f" and {doc}" if doc is not None else ""))
    return result


def build_result(
    plan: Mapping[str, Any],
    records: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    source: Mapping[str, Any],
    majority: float | None,
    ranks: Mapping[str, float | None] | None,
    dry: bool,
) -> dict[str, Any]:
    """The published figures: the plan, where and when the seeds ran, the source, the analysis of
    ``records`` against the ``majority`` floor, and the source's ranking of them (``ranks``)."""
    meta = dict(meta)
    meta["finished"] = max((r["finished"] for r in records.values()), default=None)
    meta["runs"] = machine_runs(records, meta)
    analysis = analyse(records, plan["study_seeds"], min(BUDGET, plan["trials"]), majority)
    if ranks is not None:
        analysis["source_ranking"] = ranks
    return {"dry_run": dry, "plan": plan, "meta": meta, "source": source, "analysis": analysis}


def write_report(result: Mapping[str, Any], publish: Path, plot: Path, doc: Path | None) -> None:
    """The figures as JSON in ``publish``, the hypervolume plots at ``plot``, the section in ``doc``."""
    analysis, target = result["analysis"], result["plan"].get("target") or {"task": "mrpc"}
    save_json(publish, result)
    if analysis["seeds"]:
        from benchmarks.plots import plot_hypervolume

        curves = {f"{arm} (mean of {len(analysis['seeds'])} seeds)": analysis["mean"][arm] for arm in ARMS}
        note = "dry run: meaningless numbers" if result["dry_run"] else None
        title = f"{target.get('name', 'mrpc')}, autopeft space, gp: warm-started from SST-2 vs cold"
        plot_hypervolume(plot, curves, title=title, note=note)
        if "above_majority" in analysis["mean"]:
            above = {label: analysis["mean"]["above_majority"][arm] for label, arm in zip(curves, ARMS, strict=True)}
            plot_hypervolume(
                plot.with_name(f"{plot.stem}_above_majority.png"),
                above,
                title=f"{title}\n(hypervolume above the majority class of the search split)",
                note=note,
                metric_floor=analysis["ranking"].get("majority"),
            )
    if doc is not None and analysis["seeds"]:
        write_section(doc, section(result), target.get("name", "mrpc"))


def republish(target: str, into: Path) -> list[Path]:
    """``target``'s figures, plots and section again, from its published study records, under ``into``
    laid out as the repository (its docs/warm_start.md updated in place, a copy of this checkout's when
    there is none). No training and no data: the majority floor and the source's ranking are the ones
    the report measured (a GP fit's last digits depend on the CPU). Returns the JSON and the page."""
    publish, plot = published(target)
    recorded = load_json(publish)
    plan = recorded["plan"]
    records = read_records(RECORDS / target, [key(seed, arm) for seed in plan["study_seeds"] for arm in ARMS])
    meta = {k: v for k, v in recorded["meta"].items() if k not in ("finished", "runs")}
    analysis = recorded["analysis"]
    majority = analysis["ranking"].get("majority")
    result = build_result(plan, records, meta, recorded["source"], majority, analysis.get("source_ranking"), False)
    doc = into / DOC.relative_to(ROOT)
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(DOC.read_text())
    json_path = into / publish.relative_to(ROOT)
    write_report(result, json_path, into / plot.relative_to(ROOT), doc)
    return [json_path, doc]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda deadline: run_phases(args, deadline), args.time_limit)


def run_phases(args: argparse.Namespace, deadline: float | None) -> None:
    plan = make_plan(args)
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    bench_meta(out / "ws-meta.json", plan)
    if "source" in args.phases or "run" in args.phases:
        records = None if args.dry_run else RECORDS / plan["target"]["name"]
        run(plan, out, args.phases, deadline, records)
    if "report" in args.phases:
        dry = bool(args.dry_run)
        default_json, default_plot = published(args.target)
        publish = args.publish or (out / "warm_start.json" if dry else default_json)
        plot = publish.parent / (f"{publish.stem}_hypervolume.png") if args.publish or dry else default_plot
        doc = args.doc if args.doc is not None else (None if dry else DOC)
        report(plan, out, publish, plot, doc, dry)


if __name__ == "__main__":
    sys.exit(main())
