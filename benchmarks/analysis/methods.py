"""The figures of the methods benchmark (issue 32), from study records: each study's hypervolume over
trials (on the search split, and above its majority class without the head-only point), its front's
dev hypervolume, means over seeds per method and space, gp against each peer seed by seed, the targets."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.harness.analysis import config_key, mean_std, n_layers_of

SEEDS = (0, 1, 2)


METHODS = {"autopeft": ("gp", "tpe", "sobol"), "full": ("gp", "tpe")}


TRIAL_COUNTS = (10, 20, 30)


def key(space: str, method: str, seed: int) -> str:
    return f"{space}-{method}-seed{seed}"


def parse_key(k: str) -> tuple[str, str, int]:
    """``(space, method, seed)`` of a study key."""
    space, method, seed = k.rsplit("-", 2)
    return space, method, int(seed.removeprefix("seed"))


ALL_KEYS = tuple(key(space, m, s) for space, methods in METHODS.items() for m in methods for s in SEEDS)


def search_curve(trials: Sequence[Mapping[str, Any]]) -> list[float]:
    """A study's hypervolume after each trial, by number (:func:`plots.hypervolume_curve`)."""
    from benchmarks.plots import hypervolume_curve

    return hypervolume_curve(trials)


def _head_only(trial: Mapping[str, Any]) -> bool:
    """Whether a trial trains the classifier head only (``{}``: no PEFT parameter)."""
    return not trial.get("config")


def at(curve: Sequence[float], k: int) -> float | None:
    """The hypervolume after ``k`` trials (None: the study has fewer)."""
    return float(curve[k - 1]) if len(curve) >= k else None


def above_majority_curve(trials: Sequence[Mapping[str, Any]], majority: float) -> list[float]:
    """:func:`search_curve` above the ``majority`` metric and without the head-only configuration (every
    study finds it, and its shared term would hide the difference); a head-only trial keeps the value
    before it, so the curve is indexed by trial number like the plain one."""
    from benchmarks.plots import hypervolume_curve

    masked = [{**t, "state": "left out"} if _head_only(t) else t for t in trials]
    return hypervolume_curve(masked, majority)


def front_dev(
    record: Mapping[str, Any], metric: str, retrained: Mapping[str, float] | None = None
) -> list[dict[str, Any]] | None:
    """The study's front at its end (search metric vs trained share), each point with its dev score:
    the trial's own (``dev_<metric>``, the study scored dev), else ``retrained`` by configuration key (the
    reused studies: the CPU experiment's retraining with the study's training seed). None: a point has none."""
    n_layers = n_layers_of(record)
    out = []
    for t in record["pareto"]["data"]:
        dev = (t.get("metrics") or {}).get(f"dev_{metric}")
        if dev is None and retrained is not None:
            dev = retrained.get(config_key(t["config"], n_layers))
        if dev is None:
            return None
        out.append({"number": t["number"], "param_fraction": t["param_fraction"], "search": t["metric"], "dev": dev})
    return out


def dev_hypervolume(front: Sequence[Mapping[str, Any]], majority: float | None = None) -> float:
    """Hypervolume of the front's dev scores, as a study's is computed; with ``majority``, above it and
    without the head-only point."""
    from autopeft.pareto import STUDY_REFERENCE, study_front

    if majority is None:
        return study_front([p["dev"] for p in front], [p["param_fraction"] for p in front])[1]
    kept = [p for p in front if p["param_fraction"] > 0]
    reference = (majority, STUDY_REFERENCE[1])
    return study_front([p["dev"] for p in kept], [p["param_fraction"] for p in kept], reference)[1] if kept else 0.0


def study_row(
    k: str,
    record: Mapping[str, Any],
    majority: Mapping[str, float],
    metric: str,
    retrained: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """One study of summary.json: its hypervolumes at :data:`TRIAL_COUNTS`, on the search split and above
    its majority class, and the dev hypervolume of its front at its end."""
    space, method, seed = parse_key(k)
    trials = record["trials"]
    plain, above = search_curve(trials), above_majority_curve(trials, majority["search"])
    counts = record["study"]["counts"]
    front = front_dev(record, metric, retrained)
    durations = [t["duration_s"] for t in trials if t.get("duration_s") is not None]
    scoring = [
        t["extra"]["eval_seconds"] / t["duration_s"]
        for t in trials
        if (t.get("extra") or {}).get("eval_seconds") is not None and t.get("duration_s")
    ]
    row: dict[str, Any] = {
        "key": k,
        "space": space,
        "method": method,
        "seed": seed,
        "study_id": record["id"],
        "trials": len(trials),
        "completed": counts["completed"],
        "failed": counts["failed"],
    }
    for n in TRIAL_COUNTS:
        row[f"search_hypervolume_{n}"] = at(plain, n)
    for n in TRIAL_COUNTS:
        row[f"above_majority_hypervolume_{n}"] = at(above, n)
    last = TRIAL_COUNTS[-1]
    complete = len(trials) >= last
    row[f"dev_hypervolume_{last}"] = dev_hypervolume(front) if front is not None and complete else None
    row[f"dev_above_majority_hypervolume_{last}"] = (
        dev_hypervolume(front, majority["dev"]) if front is not None and complete else None
    )
    row |= {
        "front": front,
        "sources": _sources(trials),
        "front_sources": _sources(record["pareto"]["data"]),
        "trial_seconds_median": statistics.median(durations) if durations else None,
        # the share of a trial spent scoring (the search split, and dev where the study scores it)
        "scoring_share_median": statistics.median(scoring) if scoring else None,
        "batch": record.get("batch"),
        "batch_wall_seconds": record.get("batch_wall_seconds"),
        "machine": record.get("machine"),
        "created": record["study"].get("created_at"),
        "finished": record.get("finished"),
        "reused_from": record.get("reused_from"),
        "curve": plain,
        "above_majority_curve": above,
    }
    return row


def _sources(trials: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many trials each source proposed (sobol, gp, tpe ...)."""
    return dict(Counter(t.get("source") or "?" for t in trials))


MEASURES = (
    *(f"search_hypervolume_{n}" for n in TRIAL_COUNTS),
    *(f"above_majority_hypervolume_{n}" for n in TRIAL_COUNTS),
    f"dev_hypervolume_{TRIAL_COUNTS[-1]}",
    f"dev_above_majority_hypervolume_{TRIAL_COUNTS[-1]}",
)


def method_rows(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per space and method: mean, std and values over the seeds measured, for each of :data:`MEASURES`."""
    out = []
    for space, methods in METHODS.items():
        for method in methods:
            rows = sorted((r for r in studies if (r["space"], r["method"]) == (space, method)), key=lambda r: r["seed"])
            entry: dict[str, Any] = {"space": space, "method": method, "seeds": [r["seed"] for r in rows]}
            for m in MEASURES:
                values = [r[m] for r in rows if r[m] is not None]
                mean, std = mean_std(values) if values else (None, None)
                entry[m] = {
                    "mean": mean,
                    "std": std,
                    "values": values,
                    "seeds": [r["seed"] for r in rows if r[m] is not None],
                }
            out.append(entry)
    return out


def comparisons(studies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """gp against each peer on each space: per seed, gp minus the peer for each of :data:`MEASURES`, and a
    paired sign count (seeds where gp is ahead, behind, level)."""
    by = {(r["space"], r["method"], r["seed"]): r for r in studies}
    out = []
    for space, methods in METHODS.items():
        for peer in (m for m in methods if m != "gp"):
            seeds = [s for s in SEEDS if (space, "gp", s) in by and (space, peer, s) in by]
            entry: dict[str, Any] = {"space": space, "peer": peer, "seeds": seeds}
            for m in MEASURES:
                diffs = {
                    s: by[(space, "gp", s)][m] - by[(space, peer, s)][m]
                    for s in seeds
                    if by[(space, "gp", s)][m] is not None and by[(space, peer, s)][m] is not None
                }
                entry[m] = {
                    "differences": {str(s): d for s, d in diffs.items()},
                    "gp_ahead": sum(d > 1e-9 for d in diffs.values()),
                    "gp_behind": sum(d < -1e-9 for d in diffs.values()),
                    "level": sum(abs(d) <= 1e-9 for d in diffs.values()),
                }
            out.append(entry)
    return out


def targets(methods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, on the means over seeds (``met`` None: a study is missing)."""
    means = {(r["space"], r["method"]): r for r in methods}
    last, first = TRIAL_COUNTS[-1], TRIAL_COUNTS[0]
    out = []

    def full_seeds(space: str, method: str, measure: str) -> bool:
        return len(means[(space, method)][measure]["values"]) == len(SEEDS)

    for space, peers in METHODS.items():
        m = f"search_hypervolume_{last}"
        others = [p for p in peers if p != "gp"]
        ready = all(full_seeds(space, x, m) for x in ("gp", *others))
        gp = means[(space, "gp")][m]["mean"]
        shown = ", ".join(f"{x} {number(means[(space, x)][m]['mean'])}" for x in ("gp", *others))
        out.append(
            {
                "target": f"gp's mean search hypervolume above {' and '.join(others)}'s at {last} trials "
                f"({space} space)",
                "met": all(gp > means[(space, x)][m]["mean"] for x in others) if ready else None,
                "detail": f"means over seeds: {shown}",
            }
        )
    gp10, sobol30 = (
        means[("autopeft", "gp")][f"search_hypervolume_{first}"],
        means[("autopeft", "sobol")][f"search_hypervolume_{last}"],
    )
    ready = full_seeds("autopeft", "gp", f"search_hypervolume_{first}") and full_seeds(
        "autopeft", "sobol", f"search_hypervolume_{last}"
    )
    out.append(
        {
            "target": f"gp's mean search hypervolume at {first} trials at least sobol's at {last} (autopeft space)",
            "met": gp10["mean"] >= sobol30["mean"] if ready else None,
            "detail": f"gp at {first}: {number(gp10['mean'])}, sobol at {last}: {number(sobol30['mean'])}",
        }
    )
    return out


def number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def analyse(studies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json's figures from the study rows (:func:`study_row`)."""
    rows = method_rows(studies)
    return {"methods": rows, "comparisons": comparisons(studies), "targets": targets(rows)}
