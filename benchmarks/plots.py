"""Figures of the benchmarks, drawn from their saved JSON with matplotlib (Agg).

Pure drawing: every function takes plain lists and dicts and writes one PNG. The
benchmark (e.g. :mod:`benchmarks.experiment.report`) decides what to draw; the front of
a set of results is :func:`autopeft.pareto.study_front` (metric up, ``param_fraction``
down, hypervolume against the fixed reference of a study).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

#: Fractions are drawn as percentages on a log axis; a fraction of 0 would be at minus infinity.
MIN_PERCENT = 1e-4
BASELINE_COLOURS = (
    "tab:red",
    "tab:orange",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def _percent(fraction: float) -> float:
    return max(100.0 * fraction, MIN_PERCENT)


def front_steps(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The Pareto front of ``(fraction, metric)`` points as a step line, fewest parameters first:
    the x (percent) and y of the front points, sorted by fraction (draw with ``where="post"``)."""
    from autopeft.pareto import study_front

    if not points:
        return [], []
    idx, _ = study_front([m for _, m in points], [f for f, _ in points])
    front = sorted((points[i] for i in idx), key=lambda p: p[0])
    return [_percent(f) for f, _ in front], [m for _, m in front]


def plot_front(
    path: Path,
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    ylabel: str,
    baselines: Sequence[Mapping[str, Any]] = (),
    errors: Sequence[float] | None = None,
    note: str | None = None,
) -> Path:
    """All results grey, their Pareto front as a step line, and labelled baseline points.

    ``points``: ``(param_fraction, metric)``; ``errors``: a standard deviation per point
    (drawn as error bars); ``baselines``: dicts with ``label``, ``param_fraction``,
    ``metric`` and optionally ``std``.
    """
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    if points:
        xs = [_percent(f) for f, _ in points]
        ys = [m for _, m in points]
        if errors is not None:
            ax.errorbar(xs, ys, yerr=errors, fmt="o", color="0.6", ecolor="0.8", ms=4, label="configurations")
        else:
            ax.scatter(xs, ys, s=16, color="0.6", label="trials", zorder=2)
        fx, fy = front_steps(points)
        ax.step(fx, fy, where="post", color="tab:blue", lw=1.8, zorder=3, label="Pareto front")
        ax.scatter(fx, fy, s=30, color="tab:blue", zorder=4)
    placed: list[float] = []
    for i, b in enumerate(baselines):
        colour = BASELINE_COLOURS[i % len(BASELINE_COLOURS)]
        x, y = _percent(b["param_fraction"]), b["metric"]
        if b.get("std"):
            ax.errorbar([x], [y], yerr=[b["std"]], fmt="D", color=colour, ms=6, zorder=5)
        else:
            ax.scatter([x], [y], marker="D", s=40, color=colour, zorder=5)
        # staggered among methods with about the same share, so that their labels stay readable
        crowd = sum(abs(math.log10(x / other)) < 0.05 for other in placed)
        placed.append(x)
        offset = (5, (6, -12, 15, -21)[crowd % 4])
        ax.annotate(b["label"], (x, y), textcoords="offset points", xytext=offset, fontsize=7, color=colour)
    ax.set_xscale("log")
    ax.set_xlim(right=400)  # room for the label of full fine-tuning at 100%
    ax.set_xlabel("trained parameters (% of the backbone, log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if points:
        ax.legend(loc="best", fontsize=8)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="tab:red")
    return _save(fig, path)


def hypervolume_curve(trials: Sequence[Mapping[str, Any]], metric_floor: float | None = None) -> list[float]:
    """Hypervolume of the completed trials among the first ``k`` (by trial number), for each ``k``.

    ``trials``: dicts with ``number``, ``state``, ``metric`` and ``param_fraction`` (the
    server's trial JSON). Hypervolume of (metric, -log10 fraction) against the study's
    fixed reference, as :func:`autopeft.pareto.study_front` computes it, or, with
    ``metric_floor``, against that metric (e.g. the majority class: what does not beat it adds nothing).
    """
    from autopeft.pareto import STUDY_REFERENCE, study_front

    reference = STUDY_REFERENCE if metric_floor is None else (float(metric_floor), STUDY_REFERENCE[1])

    curve: list[float] = []
    metrics: list[float] = []
    fractions: list[float] = []
    for t in sorted(trials, key=lambda t: t["number"]):
        if t.get("state") == "completed" and t.get("metric") is not None and math.isfinite(t["metric"]):
            metrics.append(float(t["metric"]))
            fractions.append(float(t["param_fraction"]))
            curve.append(study_front(metrics, fractions, reference)[1])
        else:
            curve.append(curve[-1] if curve else 0.0)
    return curve


def plot_hypervolume(
    path: Path,
    curves: Mapping[str, Sequence[float]],
    *,
    title: str,
    note: str | None = None,
    metric_floor: float | None = None,
) -> Path:
    """Hypervolume over the trial count, one line per study (e.g. gp vs sobol); ``metric_floor``: the
    curves' reference metric where it is not 0 (:func:`hypervolume_curve`)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, lw=1.8, label=label)
    ax.set_xlabel("trials")
    floor = "0" if metric_floor is None else f"{metric_floor:.3f}"
    ax.set_ylabel(f"hypervolume (metric x -log10 fraction, ref ({floor}, 100%))")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="tab:red")
    return _save(fig, path)


def plot_hypervolume_bands(
    path: Path,
    curves: Mapping[str, Sequence[Sequence[float]]],
    *,
    title: str,
    note: str | None = None,
    metric_floor: float | None = None,
    colours: Sequence[str] | None = None,
) -> Path:
    """Hypervolume over the trial count, one colour per method (``colours``, in the order of ``curves``):
    each seed's curve thin, their mean thick and one standard deviation around it shaded (over the
    trials every seed has reached)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, (label, runs) in enumerate(curves.items()):
        colour = colours[i] if colours else f"C{i}"
        for run in runs:
            ax.plot(range(1, len(run) + 1), run, lw=0.7, alpha=0.45, color=colour)
        n = min(len(run) for run in runs)
        if n == 0:
            continue
        values = np.array([run[:n] for run in runs], dtype=float)
        mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(n)
        x = np.arange(1, n + 1)
        ax.plot(x, mean, lw=2.0, color=colour, label=label)
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
    ax.set_xlabel("trials")
    floor = "0" if metric_floor is None else f"{metric_floor:.3f}"
    ax.set_ylabel(f"hypervolume (metric x -log10 fraction, ref ({floor}, 100%))")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="tab:red")
    return _save(fig, path)


def plot_throughput(path: Path, rows: Sequence[Mapping[str, Any]], *, title: str, note: str | None = None) -> Path:
    """Training examples per second per method (bars), the method's trained share in the label."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    labels = [f"{r['label']}\n{100 * r['param_fraction']:.3g}%" for r in rows]
    values = [r["examples_per_second"] for r in rows]
    colours = ["tab:red" if r.get("method") == "full" else "tab:blue" for r in rows]
    ax.bar(range(len(rows)), values, color=colours)
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("training examples / s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="tab:red")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path
