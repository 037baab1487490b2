"""The figures of the warm-start benchmark (issue 19), from study records: hypervolume over trials,
when the warm study reaches the cold one, whether the budget ranks configurations, how well the
source predicts the new results, the issue's targets (evaluated, never asserted), where seeds ran."""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

#: The issue's target: the warm study reaches the cold study's hypervolume at BUDGET trials within WITHIN trials.
BUDGET, WITHIN = 30, 10

ARMS = ("cold", "warm")


def key(seed: int, arm: str) -> str:
    return f"ws-{arm}-seed{seed}"


def completed(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The completed trials with a result, by number."""
    done = [t for t in trials if t.get("state") == "completed" and t.get("metric") is not None]
    return sorted(done, key=lambda t: t["number"])


def hypervolume_curve(trials: Sequence[Mapping[str, Any]], metric_floor: float | None = None) -> list[float]:
    """Hypervolume of the completed trials among the first ``k`` (by number), for each ``k``
    (:func:`plots.hypervolume_curve`, as the CPU results experiment draws it; with ``metric_floor``,
    above that metric only)."""
    from benchmarks.plots import hypervolume_curve as curve

    return curve(trials, metric_floor)


def at(curve: Sequence[float], k: int) -> float:
    """The hypervolume after ``k`` trials (the last value when the study has fewer)."""
    if not curve:
        return 0.0
    return float(curve[min(k, len(curve)) - 1])


def trials_to_reach(curve: Sequence[float], target: float) -> int | None:
    """The first trial count at which ``curve`` reaches ``target`` (None: never)."""
    for k, value in enumerate(curve, start=1):
        if value >= target - 1e-12:
            return k
    return None


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """The mean of several curves, point by point, over the length of the shortest."""
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [statistics.fmean(c[i] for c in curves) for i in range(n)]


def compare(cold_curve: Sequence[float], warm_curve: Sequence[float], budget: int) -> dict[str, Any]:
    """Two hypervolume curves: the cold one at ``budget`` trials, when the warm one reaches it, both
    at :data:`WITHIN` trials and at their ends."""
    target = at(cold_curve, budget)
    return {
        "cold_at_budget": target,
        "warm_reaches_at": trials_to_reach(warm_curve, target),
        "cold_at_within": at(cold_curve, WITHIN),
        "warm_at_within": at(warm_curve, WITHIN),
        "cold_final": at(cold_curve, len(cold_curve)),
        "warm_final": at(warm_curve, len(warm_curve)),
    }


def seed_row(
    seed: int, cold: Mapping[str, Any], warm: Mapping[str, Any], budget: int, majority: float | None = None
) -> dict[str, Any]:
    """One seed: both curves, the cold study's hypervolume at ``budget`` trials, when the warm study
    reaches it; with ``majority``, the same for the hypervolume above the majority class."""
    cold_curve, warm_curve = hypervolume_curve(cold["trials"]), hypervolume_curve(warm["trials"])
    front = {t["id"] for t in warm["pareto"]["data"]}
    seeded = [t for t in warm["trials"] if t["source"] == "warm_start"]
    row = {
        "seed": seed,
        "cold": {"study_id": cold["id"], "curve": cold_curve, "final": at(cold_curve, len(cold_curve))},
        "warm": {"study_id": warm["id"], "curve": warm_curve, "final": at(warm_curve, len(warm_curve))},
        **compare(cold_curve, warm_curve, budget),
        "warm_start_trials": len(seeded),
        "warm_start_on_front": sum(t["id"] in front for t in seeded),
        "warm_start_completed": sum(t["state"] == "completed" for t in seeded),
    }
    if majority is not None:
        curves = {arm: hypervolume_curve(r["trials"], majority) for arm, r in (("cold", cold), ("warm", warm))}
        row["above_majority"] = {"cold_curve": curves["cold"], "warm_curve": curves["warm"]}
        row["above_majority"] |= compare(curves["cold"], curves["warm"], budget)
    return row


def majority_search_metric(task: str, data_dir: str, training: Mapping[str, Any]) -> float:
    """The objective of always predicting the most frequent training label, on the held-out search
    split that the studies score (the same rows: :meth:`autopeft.tasks.data.TaskData.split`)."""
    from collections import Counter

    from autopeft.tasks import compute_metrics, read_labeled, resolve_data_dir, resolve_task
    from autopeft.tasks.data import TaskData

    spec = resolve_task(task, data_dir)
    folder = resolve_data_dir(spec)
    rows = read_labeled(spec, folder / spec.train_file, spec.labels)
    data = TaskData(spec, folder, spec.labels, rows, tokenizer=None)
    split = data.split(
        training.get("search_split", 0.1),
        training.get("split_seed", 0),
        training.get("max_train_examples"),
        training.get("max_search_examples"),
    )
    labels = rows["labels"]
    majority = Counter(labels[int(i)] for i in split.train).most_common(1)[0][0]
    search = [labels[int(i)] for i in split.search]
    return float(compute_metrics([spec.metric], [majority] * len(search), search)[spec.metric])


def source_ranking(source: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """How well the source study predicts each study's own results: Kendall's tau between a GP of the
    source's metric (the optimiser's model, fitted on its completed trials) and each study's
    completed metrics, by record key (None: fewer than 3 results; configurations the source's space
    cannot encode are left out; empty: the source has fewer than 3). What a ranking-weighted transfer
    (RGPE, Feurer et al. 2018) weighs an earlier study by; positive: the source ranks them right."""
    import torch
    from scipy.stats import kendalltau

    from autopeft.optimize.domain import snap
    from autopeft.optimize.gp import fit_gp_list
    from autopeft.optimize.transforms import fit_transform
    from autopeft.optimize.warm import encoded
    from autopeft.shape import model_shape
    from autopeft.space import build_space

    body = source["body"]
    space = build_space(body.get("space", "autopeft"), model_shape(body.get("model")))
    cards = list(space.cardinalities)

    def points(trials: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        done = [(x, t["metric"]) for t in completed(trials) if (x := encoded(space, t["config"])) is not None]
        X = torch.tensor([list(x) for x, _ in done], dtype=torch.double).reshape(-1, len(cards))
        y = torch.tensor([[m] for _, m in done], dtype=torch.double).reshape(-1, 1)
        return snap(X, torch.tensor(cards, dtype=torch.double)), y

    X, y = points(source["trials"])
    if len(y) < 3:
        return {}
    z = fit_transform(y, "standardize")[0]
    with torch.random.fork_rng():  # the fit's random restarts: the same figures on every report
        torch.manual_seed(0)
        model = fit_gp_list(X, z, cards, None, False).models[0]
    out: dict[str, float | None] = {}
    for k, record in records.items():
        Xk, yk = points(record["trials"])
        if len(yk) < 3:
            out[k] = None
            continue
        with torch.no_grad():
            mean = model.posterior(Xk).mean.reshape(-1)
        out[k] = float(kendalltau(mean.numpy(), yk.reshape(-1).numpy()).statistic)
    return out


def ranking(records: Sequence[Mapping[str, Any]], majority: float | None) -> dict[str, Any]:
    """Does the budget rank configurations? The spread of the cold studies' completed scores, and how
    many clear the majority class by 2 points or more."""
    scores = sorted(t["metric"] for r in records for t in completed(r["trials"]))
    if not scores:
        return {"majority": majority, "trials": 0}
    out: dict[str, Any] = {
        "majority": majority,
        "trials": len(scores),
        "min": scores[0],
        "median": statistics.median(scores),
        "max": scores[-1],
    }
    if majority is not None:
        out["clear_by_2_points"] = sum(s >= majority + 0.02 for s in scores)
    return out


def analyse(
    records: Mapping[str, Mapping[str, Any]], seeds: Sequence[int], budget: int = BUDGET, majority: float | None = None
) -> dict[str, Any]:
    """Per seed and on the mean curves: reach and finals; the budget's ranking; then the issue's targets."""
    rows = [
        seed_row(seed, records[key(seed, "cold")], records[key(seed, "warm")], budget, majority)
        for seed in seeds
        if key(seed, "cold") in records and key(seed, "warm") in records
    ]
    cold_mean = mean_curve([r["cold"]["curve"] for r in rows])
    warm_mean = mean_curve([r["warm"]["curve"] for r in rows])
    mean = {"cold": cold_mean, "warm": warm_mean, **compare(cold_mean, warm_mean, budget)}
    if not rows:
        mean["warm_reaches_at"] = None
    if rows and majority is not None:
        means = {arm: mean_curve([r["above_majority"][f"{arm}_curve"] for r in rows]) for arm in ARMS}
        mean["above_majority"] = {"cold": means["cold"], "warm": means["warm"]}
        mean["above_majority"] |= compare(means["cold"], means["warm"], budget)
    colds = [records[key(seed, "cold")] for seed in seeds if key(seed, "cold") in records]
    return {
        "budget": budget,
        "within": WITHIN,
        "seeds": rows,
        "mean": mean,
        "ranking": ranking(colds, majority),
        "targets": targets(rows, mean),
    }


def targets(rows: Sequence[Mapping[str, Any]], mean: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's two targets, per seed (the warm study of seed s against the cold study of seed s)."""
    if not rows:
        return []
    reach = [r["warm_reaches_at"] for r in rows]
    within = all(k is not None and k <= WITHIN for k in reach)
    shown = ", ".join("never" if k is None else str(k) for k in reach)
    never_below = all(r["warm"]["final"] >= r["cold"]["final"] for r in rows)
    finals = ", ".join(f"{r['warm']['final']:.4f} vs {r['cold']['final']:.4f}" for r in rows)
    return [
        {
            "target": f"the warm study reaches the cold study's hypervolume at {BUDGET} trials "
            f"in at most {WITHIN} trials",
            "met": within,
            "detail": f"trials needed per seed: {shown} (mean curves: {mean['warm_reaches_at'] or 'never'})",
        },
        {
            "target": "the warm study never ends below the cold one",
            "met": never_below,
            "detail": f"final hypervolume per seed, warm vs cold: {finals}",
        },
    ]


def machine_runs(records: Mapping[str, Any], meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where and when the seeds ran: one entry per machine, in the order of their first study.

    A benchmark resumed on another machine keeps the earlier seeds' records, so the figures come
    from several machines; each record names its own (older records: this run's ``meta``).
    """
    runs: dict[tuple[str, Any], dict[str, Any]] = {}
    for rec in sorted(records.values(), key=_started):
        machine = rec.get("machine") or {"device": meta["device"], "cpu_count": meta["cpu_count"]}
        run = runs.setdefault(
            (machine["device"], machine["cpu_count"]),
            {**machine, "seeds": [], "started": _started(rec), "finished": ""},
        )
        seed = int(rec["key"].rsplit("seed", 1)[1])
        if seed not in run["seeds"]:
            run["seeds"].append(seed)
        run["finished"] = max(run["finished"], rec["finished"])
    return list(runs.values())


def _started(record: Mapping[str, Any]) -> str:
    """When a record's study was created, as ``now()`` writes times."""
    created = datetime.datetime.fromisoformat(record["study"]["created_at"].replace("Z", "+00:00"))
    return created.replace(microsecond=0).isoformat()
