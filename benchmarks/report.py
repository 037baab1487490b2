"""Every published page written again from the published records: no training, no data, no device.

    python -m benchmarks.report --check       # regenerate into a temporary folder and compare with this
                                              # checkout byte for byte; exit 1 naming each difference
    python -m benchmarks.report               # rewrite the pages in place (after editing a template)
    python -m benchmarks.report --into DIR    # write them under DIR, laid out as the repository

What each page is made from:

- ``results-cpu``: the "Results on CPU" section of docs/results.md, ``benchmarks/results/cpu/summary.json``
  and its plots, from the CPU run's published files (meta, baselines, retraining, transfer, studies).
- ``warm_start-sst2-low``, ``warm_start-sst2-sample``: each target's section of docs/warm_start.md, its
  JSON and plots, from its published study records.
- ``early_stopping``: the measured section of docs/early_stopping.md from its published figures, and
  the bound's section and JSON from the published records of the runs without early stopping.
- ``methods``: the "Methods on real data" section of docs/results.md, ``benchmarks/results/methods/summary.json``
  and its plots, from the published study records (and the CPU run's, which it reuses).
- ``decoder_llm``: the "Decoder LLM on CPU" section of docs/results.md, ``benchmarks/results/decoder/summary.json``
  and its plot, from the published study records.
- ``baselines``: docs/baselines.md from ``benchmarks/results/baselines.json``.
- ``optimizer``, ``server``: every table of docs/optimizer.md and docs/server.md, rendered from their
  JSON with the line that says how it was measured, must appear in the page as it is (checked, not
  rewritten: the headings and prose around them are written by hand).

Figures that depend on the data or on the CPU (the majority-class floors, the warm start's GP ranking
of the source) are taken from the published results, where the report that measured them put them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.harness.records import DOCS, RESULTS, ROOT

#: Each page's name and the function that writes it under a folder laid out as the repository.
PAGES: dict[str, Callable[[Path], list[Path]]] = {}


def _page(name: str) -> Callable[[Callable[[Path], list[Path]]], Callable[[Path], list[Path]]]:
    def register(write: Callable[[Path], list[Path]]) -> Callable[[Path], list[Path]]:
        PAGES[name] = write
        return write

    return register


@_page("results-cpu")
def _results_cpu(into: Path) -> list[Path]:
    from benchmarks.experiment.report import republish

    return republish(into)


@_page("warm_start-sst2-low")
def _warm_start_low(into: Path) -> list[Path]:
    from benchmarks.warm_start import republish

    return republish("sst2-low", into)


@_page("warm_start-sst2-sample")
def _warm_start_sample(into: Path) -> list[Path]:
    from benchmarks.warm_start import republish

    return republish("sst2-sample", into)


@_page("early_stopping")
def _early_stopping(into: Path) -> list[Path]:
    from benchmarks.early_stopping import republish

    return republish(into)


@_page("methods")
def _methods(into: Path) -> list[Path]:
    from benchmarks.methods import republish

    return republish(into)


@_page("decoder_llm")
def _decoder_llm(into: Path) -> list[Path]:
    from benchmarks.decoder_llm import republish

    return republish(into)


@_page("baselines")
def _baselines(into: Path) -> list[Path]:
    from benchmarks.baselines import republish

    return republish(into)


def missing_tables(root: Path = ROOT) -> list[str]:
    """The tables (and their command lines) that the optimizer's and the server's JSON render and that
    their page under ``root`` does not hold as they are. The headings and prose around them are the page's own."""
    from benchmarks.optimizer import markdown
    from benchmarks.server import tables

    rendered = {
        "docs/optimizer.md": markdown(json.loads((RESULTS / "optimizer.json").read_text())),
        "docs/server.md": tables(json.loads((RESULTS / "server.json").read_text())),
    }
    out = []
    for page, text in rendered.items():
        held = (root / page).read_text()
        for block in text.strip("\n").split("\n\n"):
            if block.startswith(("|", "Command:", "Measured ")) and block not in held:
                out.append(f"{page}: not as its JSON renders it: {block.splitlines()[0][:100]}")
    return out


def regenerate(into: Path, names: Sequence[str] = tuple(PAGES)) -> list[Path]:
    """Write the pages ``names`` under ``into``; returns every file written (plots included)."""
    written: list[Path] = []
    for name in names:
        before = {p for p in into.rglob("*") if p.is_file()} if into.exists() else set()
        reported = PAGES[name](into)
        after = {p for p in into.rglob("*") if p.is_file()}
        written += sorted(set(reported) | (after - before))
    return list(dict.fromkeys(written))


def differences(into: Path, written: Sequence[Path]) -> list[str]:
    """The files written under ``into`` that are not byte for byte the checkout's."""
    out = []
    for path in written:
        rel = path.relative_to(into)
        committed = ROOT / rel
        if not committed.exists():
            out.append(f"{rel}: not in the checkout")
        elif committed.read_bytes() != path.read_bytes():
            out.append(f"{rel}: differs")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--check", action="store_true", help="compare with this checkout instead of writing into it")
    p.add_argument("--into", type=Path, default=None, help="folder to write under (default: this checkout)")
    p.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="only these pages")
    args = p.parse_args(argv)
    if not args.check:
        written = regenerate(args.into or ROOT, args.pages)
        print("\n".join(f"wrote {path}" for path in written))
        return 0
    into = Path(tempfile.mkdtemp(prefix="autopeft-report-"))
    try:
        written = regenerate(into, args.pages)
        problems = differences(into, written) + missing_tables()
    finally:
        shutil.rmtree(into, ignore_errors=True)
    for line in problems:
        print(line)
    print(f"{len(written)} files regenerated, {len(problems)} difference(s) from {DOCS.parent}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
