"""The ``autopeft`` command: ``autopeft serve | worker | train | study ... | demo | params | space | support | db``.

Each subcommand lives in its own module here with ``add_parser(subparsers)``; heavy
imports happen inside the command, so ``autopeft --help`` is instant. This is the
only place that turns :class:`~autopeft.errors.AutoPeftError` into an exit code
(2) and a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from autopeft import __version__
from autopeft.errors import AutoPeftError

#: Order of subcommands in ``--help``; modules found in this package but not listed come last.
ORDER = ["demo", "serve", "worker", "study", "train", "params", "space", "support", "db"]


def _command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopeft",
        description="Find the Pareto front of task quality vs trained parameters over PEFT configurations.",
    )
    parser.add_argument("--version", action="version", version=f"autopeft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"autopeft.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except AutoPeftError as err:
        print(f"autopeft {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autopeft {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
