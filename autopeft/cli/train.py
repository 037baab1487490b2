"""``autopeft train``: run one trial without a server, print its numbers, optionally save it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from autopeft.cli._output import add_model_argument, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and score one configuration on a task")
    p.add_argument(
        "--task",
        required=True,
        metavar="NAME_OR_JSON",
        help="rte, mrpc, sst2, or a task description (inline JSON or a file)",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="data directory: a GLUE root or the task's folder (default: $AUTOPEFT_DATA_DIR, else ./data/glue)",
    )
    add_model_argument(p)
    p.add_argument("--config", required=True, metavar="JSON_OR_FILE", help="PEFT configuration, inline or a file")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=None, help="passes over the training split")
    length.add_argument("--max-steps", type=int, default=None, help="optimiser steps")
    p.add_argument(
        "--training",
        metavar="JSON_OR_FILE",
        default=None,
        help="training settings object (the flags below override its fields)",
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-length", type=int, default=None, help="tokens per example after truncation")
    p.add_argument("--patience", type=int, default=None, help="evaluations without improvement before stopping")
    p.add_argument("--max-train-examples", type=int, default=None, help="train on at most this many examples")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dev", action="store_true", help="also score the dev file")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--save", metavar="OUT", default=None, help="write the trained weights to this new directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run, extras=("worker",))


def run(args: argparse.Namespace) -> int:
    from autopeft.config import load_config
    from autopeft.saving import check_save_path
    from autopeft.tasks.spec import resolve_task
    from autopeft.train.saved import save_trained
    from autopeft.train.settings import parse_training
    from autopeft.train.trial import train_trial

    task = resolve_task(parse_task_arg(args.task), args.data)
    config = load_config(args.config)
    settings = parse_training(training_from_args(args))
    out = check_save_path(args.save) if args.save else None
    trained = train_trial(task, args.model, config, settings, device=args.device, progress=not args.no_progress)
    saved = save_trained(trained, out) if out is not None else None
    _print(trained, saved, args.json)
    return 0


def parse_task_arg(text: str) -> str | dict[str, Any]:
    """A task name, or a JSON description given inline or as a file."""
    from autopeft.errors import TaskError
    from autopeft.inputs import is_file, is_inline_json, load_json_arg

    if is_inline_json(text) or is_file(text):
        return load_json_arg(text, "task description", TaskError)
    if text.strip().lower().endswith(".json") or "/" in text or os.sep in text:
        raise TaskError(f"task file {text!r} does not exist (a task is a built-in name, inline JSON, or a JSON file)")
    return text


def training_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``training`` object: ``--training`` first, then each flag that was given."""
    from autopeft.errors import ConfigError
    from autopeft.inputs import load_json_arg

    base: dict[str, Any] = load_json_arg(args.training, "--training", ConfigError) if args.training else {}
    flags = {
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "patience": args.patience,
        "max_train_examples": args.max_train_examples,
        "seed": args.seed,
    }
    if args.epochs is not None:
        base.pop("max_steps", None)
    if args.max_steps is not None:
        base.pop("epochs", None)
    base.update({k: v for k, v in flags.items() if v is not None})
    if args.dev:
        base["evaluate_dev"] = True
    return base


def _print(trained, saved: Path | None, as_json: bool) -> None:
    r = trained.result
    if as_json:
        print_json(
            {
                "task": trained.task.spec.name,
                "model": str(trained.model_dir),
                "config": trained.config.to_json(),
                **r.to_json(),
                "saved": str(saved) if saved else None,
            }
        )
        return
    rows: list[list[Any]] = []
    for split, metrics in r.metrics.items():
        rows += [[f"{split} {name}", value] for name, value in metrics.items()]
    rows += [
        ["peft_params", r.peft_params],
        ["param_fraction", r.param_fraction],
        ["head_params", r.head_params],
        ["steps", r.steps],
        ["best step", r.best_step],
        ["train seconds", round(r.train_seconds, 2)],
        ["eval seconds", round(r.eval_seconds, 2)],
    ]
    if r.prepare_seconds:
        rows.append(["prepare seconds", round(r.prepare_seconds, 2)])
    rows.append(["examples/s", round(r.examples_per_second, 1)])
    from autopeft.encoder import is_bundled

    model = "the bundled MiniLM" if is_bundled(trained.model_dir) else str(trained.model_dir)
    print(
        f"task {trained.task.spec.name} on {model}, {r.device}: "
        f"{r.metric_name} {r.metric:.4f} (search split, {r.search_examples} examples)"
    )
    print(table(rows, ["", "value"], align="lr"))
    if saved is not None:
        print(f"saved to {saved}")
