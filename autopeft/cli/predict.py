"""``autopeft predict``: load a trial saved by ``autopeft train --save`` and label a file."""

from __future__ import annotations

import argparse
import sys

from autopeft.cli._output import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict with trained weights saved by `autopeft train --save`")
    p.add_argument("--trained", required=True, metavar="DIR", help="directory written by `autopeft train --save`")
    p.add_argument(
        "--input", required=True, metavar="FILE", help="rows in the task's file format (the label column is optional)"
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="base model directory (default: the one the weights were trained on)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of one prediction per line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.train.saved import load_trained

    trained = load_trained(args.trained, model=args.model, device=args.device)
    predictions, metrics = trained.predict_file(args.input)
    if args.json:
        print_json({"predictions": predictions, "metrics": metrics})
        return 0
    for value in predictions:
        print(f"{value:.6g}" if isinstance(value, float) else value)
    if metrics:
        summary = ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        print(f"{len(predictions)} rows; {summary}", file=sys.stderr)
    return 0
