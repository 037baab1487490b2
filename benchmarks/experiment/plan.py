"""The results experiment's plan: its profiles (``gpu``: issue 9 on RTE; ``cpu``: issue 14 on SST-2 at a
2-core budget), the budgets of the real, CPU and dry runs, and the study bodies it sends to the server.
:func:`make_plan` turns the command's flags into one dict that every phase reads and meta.json keeps."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness.phases import ExperimentError
from benchmarks.harness.records import ROOT
from benchmarks.harness.reference import LEARNING_RATES, TASK_LABELS

PHASES = ("baselines", "studies", "retrain", "transfer", "throughput", "report")
TRANSFER_TARGETS = (0.001, 0.01)


#: What each profile runs. ``gpu`` is issue 9's experiment (RTE searches, one study at a time);
#: ``cpu`` is issue 14's profile of it for a 2-core machine: searches on SST-2 (the task that
#: ranks methods at CPU budgets), gp and its sobol control side by side (they share the workers,
#: so a slice of the run leaves them at equal trials), every search's front retrained on dev.
PROFILES: dict[str, dict[str, Any]] = {
    "gpu": {
        "issue": "issue 9",
        "task": "rte",
        "searches": {
            "rte-autopeft-gp": ("autopeft", "gp"),
            "rte-full-gp": ("full", "gp"),
            "rte-autopeft-sobol": ("autopeft", "sobol"),
        },
        "batches": [["rte-autopeft-gp"], ["rte-full-gp"], ["rte-autopeft-sobol"]],
        "front_studies": ["rte-autopeft-gp", "rte-full-gp"],
        "baseline_tasks": ["rte", "mrpc", "sst2"],
        "transfer_tasks": ["mrpc", "sst2"],
        "dominated_target": 5,
    },
    "cpu": {
        "issue": "issue 14",
        "task": "sst2",
        "searches": {
            "sst2-autopeft-gp": ("autopeft", "gp"),
            "sst2-autopeft-sobol": ("autopeft", "sobol"),
            "sst2-full-gp": ("full", "gp"),
        },
        "batches": [["sst2-autopeft-gp", "sst2-autopeft-sobol"], ["sst2-full-gp"]],
        "front_studies": ["sst2-autopeft-gp", "sst2-autopeft-sobol", "sst2-full-gp"],
        "baseline_tasks": ["sst2", "mrpc"],
        "transfer_tasks": ["mrpc"],
        "dominated_target": 6,
        # transfer to MRPC needs a budget at which full fine-tuning clears the majority class (ask for it)
        "phases": ("baselines", "studies", "retrain", "report"),
    },
}
#: Kept for the GPU profile's readers (tests, scripts): its searches and the studies it retrains.
SEARCHES = PROFILES["gpu"]["searches"]
FRONT_STUDIES = tuple(PROFILES["gpu"]["front_studies"])
TRANSFER_TASKS = tuple(PROFILES["gpu"]["transfer_tasks"])

#: Budgets of the real run and of the dry run (flags override).
DEFAULTS = {
    "real": {
        "device": "cuda",
        "trials": 60,
        "workers": 4,
        "seeds": [0, 1, 2],
        "epochs": 3.0,
        "max_steps": None,
        "batch_size": 32,
        "max_length": 128,
        "max_search_examples": None,
        "n_initial": None,
        "baseline_jobs": 3,
        "throughput_steps": 100,
        "fish_samples": 1024,
        "lr_preset": "standard",
        "poll": 5.0,
    },
    # issue 14: one PEFT trial of about 60-70 s on 2 cores (LoRA r=8: 62 s with 2 threads)
    "cpu": {
        "device": "cpu",
        "trials": 30,
        "workers": 2,
        "seeds": [0, 1, 2],
        "epochs": None,
        "max_steps": 200,
        "batch_size": 16,
        "max_length": 64,
        "max_search_examples": 500,
        # the lower bound of the server's default: the gp study shares its first Sobol trials with the
        # sobol control (same seed), and every trial after these is the model's
        "n_initial": 8,
        "baseline_jobs": 2,
        "throughput_steps": 50,
        "fish_samples": 256,
        "lr_preset": "short",
        "poll": 5.0,
        # MRPC at the SST-2 budget stays at the majority class; at 300 steps of max length 128 full
        # fine-tuning cleared its F1 by 3.2 points (seed 0, 246 s): the transfer tasks' own budget
        "task_budgets": {"mrpc": {"max_steps": 300, "max_length": 128}},
    },
    "dry": {
        "device": "cpu",
        "trials": 6,
        "workers": 2,
        "seeds": [0],
        "epochs": None,
        "max_steps": 2,
        "batch_size": 4,
        "max_length": 64,
        "max_search_examples": 16,
        "n_initial": 3,
        "baseline_jobs": 1,
        "throughput_steps": 2,
        "fish_samples": 8,
        "lr_preset": "short",
        "poll": 1.0,
    },
}


DESCRIPTION = "The results experiment: baselines, searches through the real service, their fronts on dev, transfer."


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags of ``python -m benchmarks.gpu_experiment`` (other benchmarks build their plan with them)."""
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, test fixtures, tiny budgets: checks the pipeline")
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="gpu",
        help="gpu: issue 9 (RTE searches, CUDA); cpu: issue 14 (SST-2 searches at a 2-core budget)",
    )
    p.add_argument("--searches", nargs="+", default=None, help="run only these searches of the profile")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: runs/gpu, dry run: runs/gpu-dry)")
    p.add_argument(
        "--phases",
        nargs="+",
        choices=PHASES,
        default=None,
        help="run only these phases (default: all; the CPU profile: baselines studies retrain report)",
    )
    p.add_argument("--force", action="store_true", help="run the chosen phases again even if their JSON exists")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda; dry run: cpu)")
    p.add_argument("--data", default=None, help="GLUE root with RTE/, MRPC/, SST-2/ (dry run: tests/fixtures/glue)")
    p.add_argument("--model", default=None, help="HF encoder directory (default: the bundled MiniLM)")
    p.add_argument("--trials", type=int, default=None, help="budget of each search study (default 60)")
    p.add_argument("--workers", type=int, default=None, help="autopeft worker processes sharing the device (4)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default 0 1 2)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=None, help="epochs per trial (default 3)")
    length.add_argument("--max-steps", type=int, default=None, help="optimiser steps per trial instead of epochs")
    p.add_argument("--batch-size", type=int, default=None, help="default 32")
    p.add_argument("--max-length", type=int, default=None, help="default 128")
    p.add_argument("--max-search-examples", type=int, default=None, help="cap of the held-out search slice")
    p.add_argument(
        "--task-budget",
        action="append",
        default=None,
        metavar="TASK:STEPS:LENGTH",
        help="another budget for one task's baselines and transfer trials (CPU default: mrpc:300:128)",
    )
    p.add_argument("--n-initial", type=int, default=None, help="Sobol trials before the GP (default: the server's)")
    p.add_argument("--baseline-jobs", type=int, default=None, help="benchmarks.baselines processes side by side (3)")
    p.add_argument("--throughput-steps", type=int, default=None, help="steps per throughput trial (100)")
    p.add_argument("--poll", type=float, default=None, help="seconds between looks at the server")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MIN",
        help="stop cleanly after MIN minutes (exit code 3); the same command continues later",
    )
    p.add_argument("--doc", type=Path, default=None, help="report file (default: docs/results.md; dry: OUT/results.md)")
    p.add_argument(
        "--publish",
        type=Path,
        default=None,
        help="where the report's plots and JSON go (default: benchmarks/results/gpu; dry run: OUT/plots)",
    )
    args = p.parse_args(argv)
    if args.phases is None:
        args.phases = list(PROFILES[args.profile].get("phases", PHASES))
    return args


def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of the run, with the dry run's or the real run's defaults filled in."""
    mode = "dry" if args.dry_run else ("cpu" if args.profile == "cpu" else "real")
    d = DEFAULTS[mode]
    known = PROFILES[args.profile]["searches"]
    if args.searches and not set(args.searches) <= set(known):
        raise ExperimentError(
            f"--searches: unknown {sorted(set(args.searches) - set(known))}; the profile has {list(known)}"
        )

    def pick(name: str) -> Any:
        value = getattr(args, name, None)
        return d[name] if value is None else value

    epochs, max_steps = pick("epochs"), pick("max_steps")
    if args.epochs is not None:
        max_steps = None
    if args.max_steps is not None:
        epochs = None
    out = args.out or (ROOT / "runs" / ("gpu-dry" if args.dry_run else args.profile))
    data = args.data or (str(ROOT / "tests" / "fixtures" / "glue") if args.dry_run else default_data_dir())
    rates = LEARNING_RATES[d["lr_preset"]]
    training: dict[str, Any] = {
        # the baselines' learning rates, per family: the search and the baselines train alike
        "learning_rate": rates["adapter"],
        "family_learning_rates": {
            f: rates[m] for f, m in (("prefix", "prefix"), ("bitfit", "bitfit"), ("fish", "fish"), ("full", "full"))
        },
        "batch_size": pick("batch_size"),
        "max_length": pick("max_length"),
        "seed": 0,
    }
    training.update({"max_steps": max_steps} if max_steps else {"epochs": epochs})
    if pick("max_search_examples"):
        training["max_search_examples"] = pick("max_search_examples")
    return {
        "dry_run": bool(args.dry_run),
        "profile": args.profile,
        "searches": list(args.searches or known),
        "transfer": "transfer" in args.phases,
        "device": pick("device"),
        "out": str(Path(out).resolve()),
        "data": str(Path(data).resolve()),
        "model": args.model,
        "trials": pick("trials"),
        "workers": pick("workers"),
        "seeds": list(pick("seeds")),
        "training": training,
        "n_initial": pick("n_initial"),
        "baseline_jobs": pick("baseline_jobs"),
        "baseline_args": baseline_args(d, args, pick, data),
        "task_budgets": task_budgets(args.task_budget, d.get("task_budgets", {})),
        "throughput_steps": pick("throughput_steps"),
        "fish_samples": d["fish_samples"],
        "lr_preset": d["lr_preset"],
        "poll": pick("poll"),
    }


def baseline_args(d: Mapping[str, Any], args: argparse.Namespace, pick: Callable[[str], Any], data: str) -> list[str]:
    out = ["--device", pick("device")]
    if args.max_steps is not None or (args.epochs is None and d["max_steps"]):
        out += ["--max-steps", str(pick("max_steps"))]
    else:
        out += ["--epochs", f"{pick('epochs'):g}"]
    out += ["--batch-size", str(pick("batch_size")), "--max-length", str(pick("max_length"))]
    if pick("max_search_examples"):
        out += ["--max-search-examples", str(pick("max_search_examples"))]
    out += ["--fish-samples", str(d["fish_samples"]), "--lr-preset", d["lr_preset"]]
    out += ["--data", str(Path(data).resolve())]
    if args.model:
        out += ["--model", args.model]
    if args.dry_run or (pick("device") == "cpu" and pick("baseline_jobs") > 1):
        out += ["--threads", "1"]
    return out


def task_budgets(flags: Sequence[str] | None, default: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """``--task-budget TASK:STEPS:LENGTH`` flags (or the profile's default) as {task: {max_steps, max_length}}."""
    if not flags:
        return {k: dict(v) for k, v in default.items()}
    out: dict[str, dict[str, int]] = {}
    for flag in flags:
        parts = flag.split(":")
        if len(parts) != 3 or parts[0] not in TASK_LABELS or not all(x.isdigit() and int(x) > 0 for x in parts[1:]):
            raise ExperimentError(
                f"--task-budget {flag!r}: expected TASK:STEPS:LENGTH with TASK one of {list(TASK_LABELS)}, "
                "e.g. mrpc:300:128"
            )
        out[parts[0]] = {"max_steps": int(parts[1]), "max_length": int(parts[2])}
    return out


def training_with(training: Mapping[str, Any], budget: Mapping[str, Any] | None) -> dict[str, Any]:
    """``training`` with ``budget``'s settings over it; a budget in steps or epochs replaces the other."""
    out = dict(training)
    if budget and ("max_steps" in budget or "epochs" in budget):
        out.pop("epochs", None)
        out.pop("max_steps", None)
    out.update(budget or {})
    return out


def task_training(plan: Mapping[str, Any], task: str) -> dict[str, Any]:
    """The training settings of ``task``'s trials: the plan's, with the task's own budget if it has one."""
    return training_with(plan["training"], plan.get("task_budgets", {}).get(task))


def task_baseline_args(plan: Mapping[str, Any], task: str) -> list[str]:
    """benchmarks.baselines' flags for ``task``: the plan's, with the task's own steps and max length if it has them."""
    args = list(plan["baseline_args"])
    budget = plan.get("task_budgets", {}).get(task)
    if not budget:
        return args
    if "--epochs" in args:
        i = args.index("--epochs")
        del args[i : i + 2]
    for flag, value in (("--max-steps", budget["max_steps"]), ("--max-length", budget["max_length"])):
        if flag in args:
            args[args.index(flag) + 1] = str(value)
        else:
            args += [flag, str(value)]
    return args


def profile_of(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The profile ``plan`` runs, narrowed to the searches it chose (a plan without one: the GPU profile)."""
    p = dict(PROFILES[plan.get("profile", "gpu")])
    chosen = plan.get("searches") or list(p["searches"])
    p["searches"] = {k: tuple(v) for k, v in p["searches"].items() if k in chosen}
    p["batches"] = [b for b in ([k for k in batch if k in chosen] for batch in p["batches"]) if b]
    p["front_studies"] = [k for k in p["front_studies"] if k in chosen]
    p["label"] = TASK_LABELS[p["task"]]
    return p


def default_data_dir() -> str:
    for candidate in (
        os.environ.get("AUTOPEFT_DATA_DIR"),
        ROOT / "data" / "glue",
        ROOT / "shared" / "data" / "glue",
        ROOT.parent / "shared" / "data" / "glue",
    ):
        if candidate and (Path(candidate) / "RTE" / "train.tsv").is_file():
            return str(candidate)
    raise ExperimentError("no GLUE data found (RTE/train.tsv): pass --data DIR or set AUTOPEFT_DATA_DIR")


def is_real(meta: Mapping[str, Any]) -> bool:
    """Whether ``meta`` describes a run that may be reported as results: not a dry run, on CUDA
    (the GPU profile) or on the CPU (the CPU profile, whose budget is made for it)."""
    if meta.get("plan", {}).get("profile") == "cpu":
        return not meta.get("dry_run", True) and meta.get("device") == "cpu"
    return (
        not meta.get("dry_run", True)
        and str(meta.get("device", "")).startswith("cuda")
        and bool(meta.get("device_name"))
        and "cpu" not in str(meta.get("device_name", "")).lower()
    )


def search_body(plan: Mapping[str, Any], key: str, space: str, method: str) -> dict[str, Any]:
    optimizer: dict[str, Any] = {"method": method}
    if plan["n_initial"] and method in ("gp", "saas"):
        optimizer["n_initial"] = plan["n_initial"]
    prof = profile_of(plan)
    return {
        "name": f"{prof['issue']} {key}: {prof['label']}, space {space}, {method}",
        "task": {"name": prof["task"], "data_dir": plan["data"]},
        "model": plan["model"],
        "space": space,
        "optimizer": optimizer,
        "max_trials": plan["trials"],
        "training": dict(plan["training"]),
        "seed": 0,
    }


def eval_body(
    plan: Mapping[str, Any], name: str, task: str, seed: int, configs: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A study whose trials are exactly ``configs`` (as baselines), trained with ``seed`` and scored on dev."""
    return {
        "name": name,
        "task": {"name": task, "data_dir": plan["data"]},
        "model": plan["model"],
        "space": "full",
        "optimizer": {"method": "sobol"},
        "max_trials": len(configs),
        "training": {**task_training(plan, task), "evaluate_dev": True, "seed": seed},
        "seed": seed,
        "baselines": [{"label": f"{c['label']}: {c.get('summary', '')}"[:200], "config": c["config"]} for c in configs],
    }
