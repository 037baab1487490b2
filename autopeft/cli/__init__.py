"""The ``autopeft`` command.

The library's own commands (``demo``, ``study``, ``train``, ``predict``, ``params``, ``space``,
``export``, ``support``, ...) live in this package, one module each with
``add_parser(subparsers)``. The roles register theirs: ``serve`` and ``db`` come from
:mod:`autopeft.api`, ``worker`` from :mod:`autopeft.worker`, found through the entry point group
``autopeft.commands`` (pyproject), so this package never imports a role to learn its commands.

A command that needs an extra says so in its defaults (``set_defaults(extras=("server",))``);
when the extra is missing the command ends with one line naming it and exit code 2. Heavy
imports happen inside the commands, so ``autopeft --help`` is instant. This is the only place
that turns :class:`~autopeft.errors.AutoPeftError` into an exit code (2) and a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from autopeft._version import __version__
from autopeft.errors import AutoPeftError
from autopeft.extras import require

#: Order of subcommands in ``--help``; commands not listed come last, by name.
ORDER = [
    "demo", "serve", "worker", "study", "train", "predict", "export", "serve-model", "params", "space", "support", "db",
]  # fmt: skip
#: The entry point group through which the roles register their commands.
COMMAND_GROUP = "autopeft.commands"

AddParser = Callable[[argparse._SubParsersAction], None]


def _library_commands() -> dict[str, AddParser]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return {name: importlib.import_module(f"autopeft.cli.{name}").add_parser for name in found}


def _registered_commands() -> dict[str, AddParser]:
    return {ep.name: ep.load() for ep in entry_points(group=COMMAND_GROUP)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopeft",
        description="Find the Pareto front of task quality vs trained parameters over PEFT configurations.",
    )
    parser.add_argument("--version", action="version", version=f"autopeft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {**_library_commands(), **_registered_commands()}
    for name in sorted(commands, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        commands[name](sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for extra in getattr(args, "extras", ()):
            require(extra, f"autopeft {args.command}")
        return int(args.run(args) or 0)
    except AutoPeftError as err:
        print(f"autopeft {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autopeft {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `autopeft support | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
