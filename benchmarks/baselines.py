"""Baselines the search must beat: eight reference PEFT methods on the bundled MiniLM.

    # the CPU run published in docs/baselines.md (about an hour on 2 busy shared CPU cores)
    python -m benchmarks.baselines --max-steps 100 --batch-size 16 --eval-every 50 \\
        --max-search-examples 200 --fish-samples 128 --threads 1 --lr-preset short
    # full budgets on a GPU
    python -m benchmarks.baselines --device cuda --epochs 3 --batch-size 32 --seeds 0 1 2

Methods: full fine-tuning, LoRA r=8 on query/value, a Pfeiffer adapter of width 64
(``serial_adapter`` after the feed-forward block), prefix tuning of length 16, BitFit,
a FISH mask over 0.5% of the backbone, a parallel adapter of width 64 (``parallel_adapter``
beside the feed-forward block) and AdaMix (the Pfeiffer adapter of width 64 with 4 experts,
averaged into one at inference); the CPU run in docs/baselines.md covers the first six.
Each is one :func:`autopeft.train.run_trial` per task and seed: trained on the training
file minus the seeded search split, the objective scored on the search split, the dev
file scored once at the end on the best state. Each method has its own learning rate
(``LEARNING_RATES``, a preset for short or standard budgets; ``--lr`` overrides).

Writes benchmarks/results/baselines.json (every trial, the exact command, versions,
machine) after each trial, and docs/baselines.md (a table) at the end;
``--doc-only`` rebuilds the table from the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.records import DOCS, RESULTS, command_line, machine, versions
from benchmarks.harness.reference import LEARNING_RATES, METHODS, TASK_LABELS, majority_dev_metrics
from benchmarks.harness.report import render

OUT = RESULTS / "baselines.json"
DOC = DOCS / "baselines.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASK_LABELS), choices=list(TASK_LABELS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--max-steps", type=int, default=None, help="optimiser steps per trial")
    budget.add_argument("--epochs", type=float, default=None, help="epochs per trial (default 3 without --max-steps)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=None, help="steps between search-split scores (default: epoch)")
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--max-search-examples", type=int, default=None)
    p.add_argument("--fish-samples", type=int, default=1024, help="examples for the FISH Fisher estimate")
    p.add_argument("--lr-preset", choices=list(LEARNING_RATES), default="standard", help="learning rates per method")
    p.add_argument("--lr", nargs="*", default=[], metavar="METHOD=LR", help="override a method's learning rate")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--model", default=None, help="HF model directory (default: the bundled MiniLM)")
    p.add_argument(
        "--data",
        default=os.environ.get("AUTOPEFT_DATA_DIR") or "../shared/data/glue",
        help="GLUE root (default: $AUTOPEFT_DATA_DIR, else ../shared/data/glue, where this project's machines keep it)",
    )
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--doc-only", action="store_true", help="only rebuild the table from --out")
    p.add_argument(
        "--attach",
        type=Path,
        default=None,
        metavar="JSON",
        help="with --doc-only: keep this other run (a results JSON) in --out and in the doc",
    )
    p.add_argument("--attach-label", default="Another run", help="section title for --attach")
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    return p.parse_args(argv)


def learning_rates(preset: str, overrides: list[str]) -> dict[str, float]:
    rates = dict(LEARNING_RATES[preset])
    for item in overrides:
        method, _, value = item.partition("=")
        if method not in METHODS or not value:
            raise SystemExit(f"--lr {item!r}: expected METHOD=LR with METHOD in {', '.join(METHODS)}")
        rates[method] = float(value)
    return rates


def training_settings(args: argparse.Namespace, method: str, seed: int, rates: dict[str, float]) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "learning_rate": rates[method],
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "evaluate_dev": True,
        "seed": seed,
    }
    if args.max_steps is not None:
        settings["max_steps"] = args.max_steps
    else:
        settings["epochs"] = args.epochs or 3.0
    optional = {
        "eval_every": args.eval_every,
        "patience": args.patience,
        "max_train_examples": args.max_train_examples,
        "max_search_examples": args.max_search_examples,
    }
    settings.update({k: v for k, v in optional.items() if v is not None})
    return settings


def method_config(method: str, args: argparse.Namespace) -> dict[str, Any]:
    config = json.loads(json.dumps(METHODS[method][1]))
    if "fish" in config:
        config["fish"]["samples"] = args.fish_samples
    return config


def run_one(task: str, method: str, seed: int, args: argparse.Namespace, rates, cache) -> dict[str, Any]:
    from autopeft.train import run_trial

    config, settings = method_config(method, args), training_settings(args, method, seed, rates)
    started = time.perf_counter()
    result = run_trial(
        task, args.model, config, settings, device=args.device, cache=cache, progress=args.progress, data_dir=args.data
    )
    wall = time.perf_counter() - started
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "config": config,
        "learning_rate": settings["learning_rate"],
        "metric_name": result.metric_name,
        "search": result.metrics["search"],
        "dev": result.metrics["dev"],
        "peft_params": result.peft_params,
        "param_fraction": result.param_fraction,
        "steps": result.steps,
        "best_step": result.best_step,
        "train_examples": result.train_examples,
        "search_examples": result.search_examples,
        "examples_per_second": result.examples_per_second,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "prepare_seconds": result.prepare_seconds,
        "wall_seconds": wall,
        "device": result.device,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.doc_only:
        payload = json.loads(args.out.read_text())
        changed = args.attach is not None or "majority_dev" not in payload
        if args.attach is not None:
            attach_run(payload, json.loads(args.attach.read_text()), args.attach_label)
        payload["majority_dev"] = floors(payload, args.data)  # measured once, kept with the figures
        if changed:
            _save(payload, args.out)
        write_doc(payload, args.doc)
        return 0
    import torch

    from autopeft.train import TrialCache

    if args.threads:
        torch.set_num_threads(args.threads)
    rates = learning_rates(args.lr_preset, args.lr)
    payload: dict[str, Any] = {
        "command": command_line(argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "machine": machine(args.device),
        "budget": training_settings(args, "full", 0, rates) | {"learning_rate": None, "seed": None},
        "fish_samples": args.fish_samples,
        "learning_rate_preset": args.lr_preset,
        "learning_rates": {m: rates[m] for m in args.methods},
        "complete": False,
        "trials": [],
    }
    cache = TrialCache()
    started = time.perf_counter()
    for task in args.tasks:
        for method in args.methods:
            for seed in args.seeds:
                row = run_one(task, method, seed, args, rates, cache)
                payload["trials"].append(row)
                _save(payload, args.out)
                print(_line(row), flush=True)
    payload["complete"] = True
    payload["total_seconds"] = time.perf_counter() - started
    payload["machine"]["load_average_at_end"] = list(os.getloadavg())
    payload["majority_dev"] = floors(payload, args.data)
    _save(payload, args.out)
    write_doc(payload, args.doc)
    print(f"wrote {args.out} and {args.doc} in {payload['total_seconds'] / 60:.1f} min")
    return 0


def _save(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def _line(row: dict[str, Any]) -> str:
    dev = ", ".join(f"{k} {v:.4f}" for k, v in row["dev"].items())
    return (
        f"{row['task']:5} {row['method']:8} seed {row['seed']}: dev {dev}; search {row['metric_name']} "
        f"{row['search'][row['metric_name']]:.4f}; {100 * row['param_fraction']:.3f}% params; "
        f"{row['steps']} steps; {row['wall_seconds']:.0f} s"
    )


# -- the page -------------------------------------------------------------------------------------


def _mean(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _cell(rows: list[dict[str, Any]], split: str) -> str:
    names = list(rows[0][split])
    return " / ".join(_mean([r[split][n] for r in rows]) for n in names)


def tasks_of(payload: dict[str, Any]) -> list[str]:
    """The tasks of a results file and of the runs kept beside it, in order."""
    trials = [*payload["trials"], *(t for run in payload.get("other_runs", []) for t in run["trials"])]
    return list(dict.fromkeys(t["task"] for t in trials))


def floors(payload: dict[str, Any], data_dir: str | None) -> dict[str, dict[str, float]]:
    """The majority class's dev metrics per task: as the run recorded them (``majority_dev``), else
    scored on ``data_dir`` now."""
    recorded = payload.get("majority_dev") or {}
    return {task: recorded.get(task) or majority_dev_metrics(task, data_dir) for task in tasks_of(payload)}


def write_doc(payload: dict[str, Any], path: Path, data_dir: str | None = None) -> None:
    """docs/baselines.md from a results file (its floors as recorded, else scored on ``data_dir``)."""
    floor = floors(payload, data_dir)
    tables = {"main": _table(payload["trials"], floor)}
    for run in payload.get("other_runs", []):
        tables[run["label"]] = _table(run["trials"], floor)
    budget, m = payload["budget"], payload["machine"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render(
            "baselines.md.j2",
            payload=payload,
            budget=budget,
            length=f"{budget['max_steps']} steps" if "max_steps" in budget else f"{budget['epochs']:g} epochs",
            m=m,
            v=payload["versions"],
            seeds=sorted({t["seed"] for t in payload["trials"]}),
            load=", ".join(f"{x:.1f}" for x in m["load_average_at_start"]),
            tables=tables,
        )
    )


def _table(trials: list[dict[str, Any]], floor: dict[str, dict[str, float]]) -> str:
    """Markdown: a row per method, per task dev / search / seconds, and the majority-class floor."""
    tasks = list(dict.fromkeys(t["task"] for t in trials))
    methods = list(dict.fromkeys(t["method"] for t in trials))
    header = ["method", "trained params", "lr"]
    for task in tasks:
        metric_names = " / ".join(next(t for t in trials if t["task"] == task)["dev"])
        header += [f"{TASK_LABELS[task]} dev {metric_names}", f"{TASK_LABELS[task]} search", f"{TASK_LABELS[task]} s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        mine = [t for t in trials if t["method"] == method]
        cells = [METHODS[method][0], f"{100 * mine[0]['param_fraction']:.3f}%", f"{mine[0]['learning_rate']:g}"]
        for task in tasks:
            rows = [t for t in mine if t["task"] == task]
            wall = statistics.mean(r["wall_seconds"] for r in rows)
            cells += [_cell(rows, "dev"), _cell(rows, "search"), f"{wall:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    row = ["majority class (no training)", "0%", "-"]
    for task in tasks:
        row += [" / ".join(f"{v:.3f}" for v in floor[task].values()), "-", "-"]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def attach_run(payload: dict[str, Any], other: dict[str, Any], label: str) -> None:
    """Keep another measured run (e.g. the same budget with other learning rates) beside the main one."""
    keep = ("command", "date", "total_seconds", "learning_rate_preset", "learning_rates", "machine", "trials")
    runs = [r for r in payload.get("other_runs", []) if r["label"] != label]
    payload["other_runs"] = [*runs, {"label": label, **{k: other.get(k) for k in keep}}]


def republish(into: Path) -> list[Path]:
    """docs/baselines.md again from benchmarks/results/baselines.json (its recorded floors), under ``into``
    laid out as the repository. Returns the page."""
    payload = json.loads(OUT.read_text())
    doc = into / DOC.relative_to(DOCS.parent)
    write_doc(payload, doc)
    return [doc]


if __name__ == "__main__":
    sys.exit(main())
