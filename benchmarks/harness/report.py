"""Pages from templates: the prose of every published page lives in ``benchmarks/templates``
(Jinja2), the numbers come formatted from the benchmark. A measured section sits between two
markers in its page and is replaced there, so the hand-written rest of the page stays."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from benchmarks.harness.phases import say

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@cache
def environment() -> Any:
    """The templates' environment: a block tag alone on its line leaves no trace, undefined names fail."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["pct"] = pct
    env.filters["fmt"] = format
    env.filters["table"] = lambda rows, header: table(header, rows)
    return env


def render(template: str, **context: Any) -> str:
    """``benchmarks/templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)


def pct(f: float | None) -> str:
    """A share as a percentage with three decimals (``-`` for none)."""
    return "-" if f is None else f"{100 * f:.3f}%"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (no trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def demote(text: str) -> str:
    """Every Markdown heading one level deeper (outside code fences)."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and line.startswith("#") else line)
    return "\n".join(out)


def write_marked_section(doc: Path, text: str, begin: str, end: str) -> None:
    """Replace the part of ``doc`` between the ``begin`` and ``end`` markers with ``text`` (which
    carries the markers), or add ``text`` at the end: a benchmark's measured section of a page."""
    old = doc.read_text() if doc.exists() else ""
    if begin in old and end in old:
        new = old[: old.index(begin)] + text.rstrip("\n") + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def say_targets(targets: Iterable[Mapping[str, Any]], tag: str = "") -> None:
    """Print each evaluated target (``met``: True, False or None when not measured) on a line."""
    for c in targets:
        met = {True: "met", False: "NOT met", None: "not measured"}[c["met"]]
        say(f"{tag}target: {c['target']}: {met} ({c['detail']})")
