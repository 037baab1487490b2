"""The figures of the early-stopping benchmark (issue 16), from study records: training seconds,
hypervolume at equal compute, false stops (by replaying the rule on the runs without it, and by the
configurations both runs trained), what other settings and an oracle would save, the targets."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from autopeft.early_stopping import EarlyStoppingSettings, Peer, best_until, decide
from autopeft.pareto import study_front

ARMS = ("off", "on")


def key(seed: int, arm: str) -> str:
    return f"es-{arm}-seed{seed}"


def finished(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Completed and stopped trials, in the order they finished."""
    done = [t for t in trials if t["state"] in ("completed", "stopped") and t.get("finished_at")]
    return sorted(done, key=lambda t: t["finished_at"])


def train_seconds(trial: Mapping[str, Any]) -> float:
    return float((trial.get("extra") or {}).get("train_seconds") or 0.0)


def dev_metric(trial: Mapping[str, Any]) -> float | None:
    extra = trial.get("extra") or {}
    dev = (extra.get("metrics") or {}).get("dev") or {}
    return dev.get(extra.get("metric_name", "accuracy"))


def front_trials(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The completed trials on the study's front (search objective against trained share)."""
    done = [t for t in trials if t["state"] == "completed" and t.get("metric") is not None]
    idx, _ = study_front([t["metric"] for t in done], [t["param_fraction"] for t in done])
    return [done[i] for i in idx]


def dev_hypervolume(trials: Sequence[Mapping[str, Any]]) -> float:
    """Hypervolume of the final front's trials scored by their own dev metric."""
    front = [t for t in front_trials(trials) if dev_metric(t) is not None]
    return study_front([dev_metric(t) for t in front], [t["param_fraction"] for t in front])[1]


def hypervolume_over_seconds(trials: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(cumulative training seconds, hypervolume) after each finished trial, in finishing order."""
    points, metrics, fractions, spent = [], [], [], 0.0
    hv = 0.0
    for t in finished(trials):
        spent += train_seconds(t)
        if t["state"] == "completed":
            metrics.append(t["metric"])
            fractions.append(t["param_fraction"])
            hv = study_front(metrics, fractions)[1]
        points.append((spent, hv))
    return points


def hypervolume_at(points: Sequence[tuple[float, float]], seconds: float) -> float:
    """The hypervolume reached within ``seconds`` of training (0 before the first trial ends)."""
    best = 0.0
    for s, hv in points:
        if s <= seconds + 1e-9:
            best = hv
    return best


def replay_stops(
    trials: Sequence[Mapping[str, Any]], settings: EarlyStoppingSettings, total_steps: int
) -> dict[int, int]:
    """Trial number -> step at which the rule would have stopped it, in a run without the rule: each
    trial's curve is checked at each of its evaluations against the trials that started before it
    (they reached every step first: same budget, same workers)."""
    ordered = sorted((t for t in trials if t.get("curve") and t.get("started_at")), key=lambda t: t["started_at"])
    stopped: dict[int, int] = {}
    for i, t in enumerate(ordered):
        # a peer's curve as the rule saw it: cut where the replay stopped that peer
        peers = [
            Peer(float(p["param_fraction"]), [tuple(x) for x in p["curve"] if x[0] <= stopped.get(p["number"], x[0])])
            for p in ordered[:i]
        ]
        curve = [tuple(x) for x in t["curve"]]
        for n in range(1, len(curve) + 1):
            d = decide(
                settings,
                step=int(curve[n - 1][0]),
                total_steps=total_steps,
                curve=curve[:n],
                param_fraction=float(t["param_fraction"]),
                peers=peers,
            )
            if not d.go_on:
                stopped[int(t["number"])] = int(curve[n - 1][0])
                break
    return stopped


#: Settings replayed on the runs without early stopping (what a different rule would have done).
REPLAYED = {
    "defaults (quantile 0.5, margin 0.01)": {},
    "margin 0": {"margin": 0.0},
    "quantile 0.75, margin 0": {"quantile": 0.75, "margin": 0.0},
    "min_peers 2, margin 0": {"min_peers": 2, "margin": 0.0},
}


def replay_savings(
    trials: Sequence[Mapping[str, Any]], settings: EarlyStoppingSettings, total_steps: int
) -> dict[str, Any]:
    """What the rule would have saved on a run without it (each stopped trial's training seconds
    scaled by the share of steps it would have skipped) and how many front trials it would have stopped."""
    stops = replay_stops(trials, settings, total_steps)
    spent = sum(train_seconds(t) for t in trials)
    saved = sum(train_seconds(t) * (1 - stops[t["number"]] / total_steps) for t in trials if t["number"] in stops)
    front = front_trials(trials)
    return {
        "stopped": len(stops),
        "seconds_ratio": (spent - saved) / spent if spent else None,
        "front": len(front),
        "front_stopped": sum(t["number"] in stops for t in front),
    }


#: The rule's settings searched by the bound (:func:`grid_best`): 160 of them.
GRID = {
    "quantile": (0.25, 0.5, 0.75, 0.9, 1.0),
    "margin": (0.0, 0.01, 0.02, 0.05),
    "min_peers": (1, 2, 3, 5),
    "grace": (0.25, 0.5),
}


def grid_best(trials: Sequence[Mapping[str, Any]], total_steps: int) -> dict[int, dict[str, Any]]:
    """For each number of front trials stopped, the replayed setting of :data:`GRID` that spends the
    fewest training seconds on a run without the rule (:func:`replay_savings`)."""
    import itertools

    best: dict[int, dict[str, Any]] = {}
    for values in itertools.product(*GRID.values()):
        change = dict(zip(GRID, values, strict=True))
        got = replay_savings(trials, EarlyStoppingSettings(enabled=True, **change), total_steps)
        k = got["front_stopped"]
        if got["seconds_ratio"] is not None and (k not in best or got["seconds_ratio"] < best[k]["seconds_ratio"]):
            best[k] = {**got, "settings": change}
    return dict(sorted(best.items()))


def oracle(trials: Sequence[Mapping[str, Any]], total_steps: int) -> list[dict[str, Any]]:
    """What no rule that spares every front trial can beat, per evaluation step ``s``: the training
    seconds spent if every other trial were stopped at ``s`` (and the front trained to the end), and
    how many front trials score no better at ``s`` than the study's worst trial there (a rule on the
    metric cannot tell them from the trials it should stop)."""
    done = [t for t in trials if t["state"] == "completed" and t.get("curve")]
    front = {t["number"] for t in front_trials(done)}
    spent = sum(train_seconds(t) for t in done)
    steps = sorted({int(s) for t in done for s, _ in t["curve"] if int(s) < total_steps})
    out = []
    for step in steps:
        at = {t["number"]: best_until([tuple(x) for x in t["curve"]], step) for t in done}
        floor = min(v for v in at.values() if v is not None)
        saved = sum(train_seconds(t) * (1 - step / total_steps) for t in done if t["number"] not in front)
        out.append(
            {
                "step": step,
                "seconds_ratio": (spent - saved) / spent if spent else None,
                "front": len(front),
                "front_at_floor": sum(at[n] is not None and at[n] <= floor for n in front),
                "floor": floor,
            }
        )
    return out


def oracle_split(trials: Sequence[Mapping[str, Any]], total_steps: int) -> dict[str, Any] | None:
    """The oracle that stops at the first evaluation every non-front trial that is above the floor
    there (a metric can tell those from the floor), and every other non-front trial at the second:
    the training seconds spent, and those trials (None: fewer than two evaluation steps)."""
    done = [t for t in trials if t["state"] == "completed" and t.get("curve")]
    steps = sorted({int(s) for t in done for s, _ in t["curve"] if int(s) < total_steps})
    if len(steps) < 2:
        return None
    first, second = steps[:2]
    front = {t["number"] for t in front_trials(done)}
    at = {t["number"]: best_until([tuple(x) for x in t["curve"]], first) for t in done}
    floor = min(v for v in at.values() if v is not None)
    early = [t for t in done if t["number"] not in front and at[t["number"]] is not None and at[t["number"]] > floor]
    late = [t for t in done if t["number"] not in front and t not in early]
    spent = sum(train_seconds(t) for t in done)
    saved = sum(train_seconds(t) * (1 - first / total_steps) for t in early)
    saved += sum(train_seconds(t) * (1 - second / total_steps) for t in late)
    return {
        "steps": [first, second],
        "seconds_ratio": (spent - saved) / spent if spent else None,
        "stopped_first": sorted(t["number"] for t in early),
        "front_above_floor": sorted(n for n in front if at[n] is not None and at[n] > floor),
    }


def bound(records: Mapping[str, Mapping[str, Any]], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Per seed, on the run without early stopping: :func:`oracle` and :func:`grid_best`."""
    total_steps = int(plan["training"].get("max_steps") or 0)
    seeds = []
    for seed in plan["seeds"]:
        off = records.get(key(seed, "off"))
        if off is None:
            continue
        trials = [t for t in off["trials"] if t["state"] == "completed"]
        seeds.append(
            {
                "seed": seed,
                "trials": len(trials),
                "oracle": oracle(trials, total_steps),
                "oracle_split": oracle_split(trials, total_steps),
                "grid": grid_best(trials, total_steps),
            }
        )
    return {"total_steps": total_steps, "grid": {k: list(v) for k, v in GRID.items()}, "seeds": seeds}


def config_id(config: Mapping[str, Any]) -> str:
    import json

    return json.dumps(config, sort_keys=True)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values) if values else float("nan"),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def analyse(records: Mapping[str, Mapping[str, Any]], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Per seed and arm: seconds, hypervolumes, stops; then the issue's targets."""
    settings = EarlyStoppingSettings(enabled=True)
    total_steps = int(plan["training"].get("max_steps") or 0)
    seeds = []
    for seed in plan["seeds"]:
        off, on = records.get(key(seed, "off")), records.get(key(seed, "on"))
        if off is None or on is None:
            continue
        row: dict[str, Any] = {"seed": seed}
        for arm, rec in (("off", off), ("on", on)):
            trials = rec["trials"]
            curve = hypervolume_over_seconds(trials)
            row[arm] = {
                "study_id": rec["id"],
                "trials": len([t for t in trials if t["state"] in ("completed", "stopped", "failed")]),
                "completed": sum(t["state"] == "completed" for t in trials),
                "stopped": sum(t["state"] == "stopped" for t in trials),
                "failed": sum(t["state"] == "failed" for t in trials),
                "train_seconds": sum(train_seconds(t) for t in trials),
                "trial_seconds": sum(float(t.get("duration_s") or 0.0) for t in trials),
                "hypervolume": rec["study"]["hypervolume"],
                "dev_hypervolume": dev_hypervolume(trials),
                "hypervolume_over_seconds": curve,
                "front": [
                    {
                        "trial": t["number"],
                        "param_fraction": t["param_fraction"],
                        "search": t["metric"],
                        "dev": dev_metric(t),
                    }
                    for t in front_trials(trials)
                ],
                "stops": [
                    {"trial": t["number"], "last_step": t.get("last_step"), "param_fraction": t["param_fraction"]}
                    for t in trials
                    if t["state"] == "stopped"
                ],
            }
        row["seconds_ratio"] = row["on"]["train_seconds"] / row["off"]["train_seconds"]
        row["off_hypervolume_at_on_seconds"] = hypervolume_at(
            row["off"]["hypervolume_over_seconds"], row["on"]["train_seconds"]
        )
        # the front configurations of the run without early stopping, in the run with it
        on_state = {config_id(t["config"]): t["state"] for t in on["trials"]}
        front = front_trials(off["trials"])
        shared = [t for t in front if config_id(t["config"]) in on_state]
        row["front_off_in_on"] = len(shared)
        row["front_off_stopped_in_on"] = sum(on_state[config_id(t["config"])] == "stopped" for t in shared)
        replayed = replay_stops(off["trials"], settings, total_steps)
        row["front_off"] = len(front)
        row["front_off_stopped_by_replay"] = sum(t["number"] in replayed for t in front)
        row["replay_stopped"] = len(replayed)
        row["replay"] = {
            name: replay_savings(off["trials"], settings.model_copy(update=change), total_steps)
            for name, change in REPLAYED.items()
        }
        seeds.append(row)
    return {"seeds": seeds, "targets": targets(seeds)}


def targets(seeds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not seeds:
        return []

    def of(arm: str, field: str) -> list[float]:
        return [s[arm][field] for s in seeds]

    ratio = sum(of("on", "train_seconds")) / sum(of("off", "train_seconds"))
    per_seed = ", ".join(f"{s['seconds_ratio']:.0%}" for s in seeds)
    out = [
        {
            "target": "at the same number of trials, at most 60% of the training seconds",
            "met": ratio <= 0.6,
            "detail": f"{ratio:.0%} ({sum(of('on', 'train_seconds')):.0f} s vs "
            f"{sum(of('off', 'train_seconds')):.0f} s; "
            f"per seed {per_seed})",
        }
    ]
    for field, name in (("dev_hypervolume", "dev hypervolume"), ("hypervolume", "search hypervolume")):
        off, on = mean_std(of("off", field)), mean_std(of("on", field))
        out.append(
            {
                "target": f"final {name} within the seed-to-seed spread of the run without (or better)",
                "met": on["mean"] >= off["mean"] - off["std"],
                "detail": f"with {on['mean']:.4f} ± {on['std']:.4f}, without {off['mean']:.4f} ± {off['std']:.4f}",
            }
        )
    at = [s["off_hypervolume_at_on_seconds"] for s in seeds]
    wins = sum(s["on"]["hypervolume"] > a for s, a in zip(seeds, at))
    out.append(
        {
            "target": "at the same training seconds, a larger hypervolume (search)",
            "met": statistics.fmean(of("on", "hypervolume")) > statistics.fmean(at),
            "detail": f"with {statistics.fmean(of('on', 'hypervolume')):.4f}, without at the same seconds "
            f"{statistics.fmean(at):.4f} (mean of seeds; larger in {wins} of {len(seeds)} seeds)",
        }
    )
    shared = sum(s["front_off_in_on"] for s in seeds)
    stopped = sum(s["front_off_stopped_in_on"] for s in seeds)
    front = sum(s["front_off"] for s in seeds)
    replayed = sum(s["front_off_stopped_by_replay"] for s in seeds)
    out.append(
        {
            "target": "a trial that would have been on the front is stopped in at most 1 case in 10",
            "met": replayed <= 0.1 * front and stopped <= 0.1 * max(shared, 1),
            "detail": f"replay on the runs without: {replayed} of {front} front trials stopped; the same front "
            f"configurations trained by the runs with: {stopped} of {shared} stopped",
        }
    )
    return out
