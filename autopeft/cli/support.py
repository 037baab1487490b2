"""``autopeft support``: which PEFT families run on which encoder architectures, and why not."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("support", help="print the support matrix (architecture x family) and the encoder layouts")
    p.add_argument("--json", action="store_true", help="print JSON: model type -> family -> null or the reason")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.cli._output import print_json
    from autopeft.support import render, support_matrix

    if args.json:
        print_json(support_matrix())
    else:
        print(render())
    return 0
