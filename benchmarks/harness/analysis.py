"""Pure figures over study records: means over seeds, completed trials as rows, configurations
grouped over seeds, which baselines a set of configurations dominates. No I/O; tested."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    values = [float(v) for v in values]
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_mean(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± std`` (just the value for one, ``-`` for none)."""
    if not values:
        return "-"
    m, s = mean_std(values)
    return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def completed(trials: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The completed trials that have a result."""
    return [t for t in trials if t.get("state") == "completed" and t.get("metric") is not None]


def config_key(config: Mapping[str, Any], n_layers: int) -> str:
    """A configuration's identity (equal configurations, however written, have one key)."""
    from autopeft.config import parse_config

    return parse_config(config).key(n_layers)


def config_summary(config: Mapping[str, Any]) -> str:
    from autopeft.config import parse_config

    return parse_config(config).summary()


def n_layers_of(record: Mapping[str, Any]) -> int:
    """The layer count of a study record's model (6, the bundled MiniLM's, when it does not say)."""
    shape = record["study"].get("model_shape") or {}
    return int(shape.get("n_layers") or shape.get("num_hidden_layers") or 6)


def trial_row(trial: Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
    """One finished trial of the server as a flat row: search metric, dev metrics, timings."""
    extra = trial.get("extra") or {}
    metrics = extra.get("metrics") or {}
    return {
        "label": trial.get("label"),
        "config": trial["config"],
        "state": trial["state"],
        "seed": seed,
        "metric_name": extra.get("metric_name"),
        "search": trial.get("metric"),
        "dev": metrics.get("dev") or {},
        "param_fraction": trial.get("param_fraction"),
        "peft_params": trial.get("peft_params"),
        "duration_s": trial.get("duration_s"),
        "examples_per_second": extra.get("examples_per_second"),
        "train_seconds": extra.get("train_seconds"),
        "steps": extra.get("steps"),
        "error": (trial.get("error") or "")[-500:] or None,
    }


def aggregate(rows: Sequence[Mapping[str, Any]], key: str = "label") -> list[dict[str, Any]]:
    """Completed rows grouped by ``key``: param_fraction, and per dev metric its values over seeds."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["state"] == "completed":
            groups.setdefault(row[key], []).append(row)
    out = []
    for name, mine in groups.items():
        first = mine[0]
        out.append(
            {
                key: name,
                "config": first["config"],
                "param_fraction": first["param_fraction"],
                "metric_name": first["metric_name"],
                "seeds": sorted(r["seed"] for r in mine if r["seed"] is not None),
                "dev": {n: [r["dev"][n] for r in mine if n in r["dev"]] for n in first["dev"]},
                "search": [r["search"] for r in mine],
            }
        )
    return out


def dominance(configs: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each baseline: the configurations at least as good on dev (mean over seeds of the task's
    metric) with fewer trained parameters. Entries: ``label``, ``param_fraction``, ``dev_mean``.

    Returns per baseline ``{"label", "param_fraction", "dev_mean", "beaten_by": [labels]}``.
    """
    out = []
    for b in baselines:
        beaten_by = [
            c["label"] for c in configs if c["dev_mean"] >= b["dev_mean"] and c["param_fraction"] < b["param_fraction"]
        ]
        out.append(
            {
                "label": b["label"],
                "param_fraction": b["param_fraction"],
                "dev_mean": b["dev_mean"],
                "beaten_by": beaten_by,
            }
        )
    return out
