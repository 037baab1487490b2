"""The published pages are what their records give (issue 28): each report, run again on the records
published under benchmarks/results, writes the committed pages, JSON and plots byte for byte. No
training, no GLUE data, no server: the majority-class floors and the warm start's GP ranking are the
ones the published results recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import report


@pytest.mark.slow
@pytest.mark.parametrize("page", list(report.PAGES))
def test_the_report_writes_the_published_page_again_byte_for_byte(page: str, tmp_path: Path) -> None:
    written = report.regenerate(tmp_path, [page])
    assert any(p.suffix == ".md" for p in written), written
    assert report.differences(tmp_path, written) == []


def test_the_optimizer_and_server_pages_hold_the_tables_their_json_renders(tmp_path: Path) -> None:
    assert report.missing_tables() == []
    for page in ("optimizer.md", "server.md"):
        (tmp_path / "docs").mkdir(exist_ok=True)
        (tmp_path / "docs" / page).write_text((report.ROOT / "docs" / page).read_text())
    server = tmp_path / "docs" / "server.md"
    server.write_text(server.read_text().replace("| postgresql | 32 | 426.5 |", "| postgresql | 32 | 462.5 |"))
    (problem,) = report.missing_tables(tmp_path)
    assert problem.startswith("docs/server.md: not as its JSON renders it: | backend | workers | cycles/s |")


def test_a_changed_figure_is_named_as_a_difference(tmp_path: Path) -> None:
    written = report.regenerate(tmp_path, ["baselines"])
    (page,) = [p for p in written if p.suffix == ".md"]
    page.write_text(page.read_text().replace("0.527", "0.528", 1))
    assert report.differences(tmp_path, written) == ["docs/baselines.md: differs"]
