"""Optimiser benchmark: hypervolume against Sobol, random, NSGA-II and TPE; proposal latency.

    python -m benchmarks.optimizer --quick          # < 5 minutes on 2 CPU cores
    python -m benchmarks.optimizer                  # the figures in docs/optimizer.md (~1 hour)
    python -m benchmarks.optimizer --latency-only --latency-methods gp tpe   # latency side by side (~5 min)

Every method runs on the same problems (benchmarks/problems.py), budgets and seeds,
with four workers simulated: proposals come in batches of 4 while the previous
batch of 4 is still being evaluated (pending points), as a server that keeps a
queue as deep as its workers does. Optuna gets the same discrete choices
(``suggest_int`` over each dimension's bins) and runs with the previous batch still
running (TPE's constant liar handles it); a configuration Optuna asks for twice is
counted as a duplicate and still costs a trial. Writes benchmarks/results/optimizer.json:

- ``results``: {problem, method, seed, n_trials, hypervolume} at every checkpoint;
- ``runs``: per run, duplicates, wall time, proposal seconds;
- ``problems``: {name: {"max_hypervolume", "exact", ...}}: exact by enumeration where
  the space allows (every problem but ``peft_full``), else the best of any run;
- ``proposal_latency``: {n_trials, dims, method, seconds_p50, seconds_p95, seconds_cold}
  for q = 4 at 50, 200 and 500 completed trials;
- ``latency_levers``: the same measurement with each cost lever switched off in turn;
- ``latency_side_by_side``: runs of ``--latency-only`` (e.g. ``tpe`` beside ``gp``, timed in one process
  under the same load), each with its rows and its own metadata;
- ``summary``: mean hypervolume per problem/method/budget, ratios and gaps;
- ``metadata``: command, date, machine, load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autopeft.optimize import Observation, OptimizerState, parse_optimizer, propose
from autopeft.optimize.domain import GridDomain
from autopeft.optimize.engine import propose_points
from benchmarks.problems import PROBLEMS, Problem

OUT = Path(__file__).resolve().parent / "results" / "optimizer.json"
Q = 4
OUR_METHODS = ("gp", "saas", "sobol", "random")
PEERS = ("sobol", "random", "nsga2", "tpe")


# -- proposers -----------------------------------------------------------------------------------


@dataclass
class History:
    """What a run has seen: completed points with noisy and true objectives."""

    X: list[tuple[float, ...]] = field(default_factory=list)
    Y: list[np.ndarray] = field(default_factory=list)
    Y_true: list[np.ndarray] = field(default_factory=list)


class OursProposer:
    """autopeft.optimize: ``propose`` on a Space (PEFT problems) or ``propose_points`` on a grid."""

    def __init__(self, problem: Problem, method: str, seed: int, settings: dict[str, Any] | None = None) -> None:
        self.problem, self.seed = problem, seed
        self.settings = parse_optimizer({"method": method, **(settings or {})})
        self.state = OptimizerState()

    def ask(self, history: History, pending: Sequence[tuple[float, ...]], n: int) -> list[tuple[float, ...]]:
        if self.problem.space is not None:
            obs = [Observation(x, float(y[0]), 10.0 ** (-float(y[1]))) for x, y in zip(history.X, history.Y)]
            props = propose(self.problem.space, obs, list(pending), n, self.seed, self.settings, state=self.state)
            return [p.x for p in props]
        d = self.problem.d
        X = torch.tensor(history.X, dtype=torch.double).reshape(-1, d)
        Y = torch.tensor(np.array(history.Y), dtype=torch.double).reshape(-1, 2)
        P = torch.tensor(list(pending), dtype=torch.double).reshape(-1, d)
        empty = torch.empty(0, d, dtype=torch.double)
        points = propose_points(GridDomain(self.problem.cards), X, Y, P, empty, n, self.seed, self.settings, self.state)
        return [x for x, _ in points]

    def tell(self, x: tuple[float, ...], y: np.ndarray) -> None:
        """Nothing to do: ``propose`` reads the whole history each time."""


class OptunaProposer:
    """Optuna's NSGA-II or TPE over the same bins (``suggest_int`` per dimension), both maximised."""

    def __init__(self, problem: Problem, method: str, seed: int, budget: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if method == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, budget // 5)))
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
        self.cards = problem.cards
        self.trials: dict[tuple[float, ...], list[Any]] = {}

    def ask(self, history: History, pending: Sequence[tuple[float, ...]], n: int) -> list[tuple[float, ...]]:
        out = []
        for _ in range(n):
            trial = self.study.ask()
            x = tuple((trial.suggest_int(f"x{i}", 0, c - 1) + 0.5) / c for i, c in enumerate(self.cards))
            self.trials.setdefault(x, []).append(trial)
            out.append(x)
        return out

    def tell(self, x: tuple[float, ...], y: np.ndarray) -> None:
        self.study.tell(self.trials[x].pop(0), [float(y[0]), float(y[1])])


def make_proposer(problem: Problem, method: str, seed: int, budget: int) -> OursProposer | OptunaProposer:
    if method in OUR_METHODS:
        return OursProposer(problem, method, seed)
    return OptunaProposer(problem, method, seed, budget)


# -- one run -------------------------------------------------------------------------------------


def run(problem: Problem, method: str, seed: int, budget: int, checkpoints: Sequence[int]) -> dict[str, Any]:
    """One optimisation run with 4 simulated workers; hypervolume at each checkpoint."""
    rng = np.random.default_rng([seed, sum(map(ord, problem.name))])
    proposer = make_proposer(problem, method, seed, budget)
    hist, keys = History(), set()
    duplicates, ask_seconds = 0, []
    t0 = time.perf_counter()

    def ask(pending: list[tuple[float, ...]], n: int) -> list[tuple[float, ...]]:
        nonlocal duplicates
        t = time.perf_counter()
        xs = proposer.ask(hist, pending, n) if n > 0 else []
        if n > 0:
            ask_seconds.append(time.perf_counter() - t)
        for x in xs:
            k = problem.key(x)
            duplicates += k in keys
            keys.add(k)
        return xs

    pending = ask([], min(Q, budget))
    hv_at: dict[int, float] = {}
    while pending:
        upcoming = ask(pending, min(Q, budget - len(hist.X) - len(pending)))
        noisy, true = problem.evaluate(np.array(pending), rng)
        for x, y, yt in zip(pending, noisy, true):
            hist.X.append(tuple(x))
            hist.Y.append(y)
            hist.Y_true.append(yt)
            proposer.tell(tuple(x), y)
            if len(hist.X) in checkpoints:
                hv_at[len(hist.X)] = problem.hypervolume(np.array(hist.Y_true))
        pending = upcoming
    return {
        "hv": hv_at,
        "duplicates": duplicates,
        "seconds": time.perf_counter() - t0,
        "ask_seconds_mean": float(np.mean(ask_seconds)),
        "ask_seconds_max": float(np.max(ask_seconds)),
        "best_front": _front(hist),
    }


def _front(hist: History) -> list[list[float]]:
    from autopeft.pareto import pareto_mask

    y = torch.tensor(np.array(hist.Y_true))
    return y[pareto_mask(y)].tolist()


# -- latency -------------------------------------------------------------------------------------


def latency_history(problem: Problem, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct points and their noisy objectives: half uniform, half sparse (each
    coordinate at its lowest value with a per-point probability), so the front is wide."""
    rng = np.random.default_rng(seed)
    cards = np.array(problem.cards)
    X, keys = [], set()
    while len(X) < n:
        idx = np.floor(rng.random(problem.d) * cards).astype(int)
        if len(X) % 2:
            idx[rng.random(problem.d) < rng.random()] = 0
        x = tuple((idx + 0.5) / cards)
        k = problem.key(x)
        if k not in keys:
            keys.add(k)
            X.append(x)
    X_arr = np.array(X)
    return X_arr, problem.evaluate(X_arr, rng)[0]


def time_proposals(
    problem: Problem,
    n_trials: int,
    method: str,
    repeats: int,
    settings: dict[str, Any] | None = None,
    use_state: bool = True,
    same_data: bool = False,
) -> dict[str, float]:
    """Seconds of one q=4 proposal with ``n_trials`` completed and 4 pending, ``repeats`` times
    (each time one more result has arrived, as in an asynchronous study), after one untimed
    cold call; with ``same_data`` the results do not change between calls (only the pending ones)."""
    X, Y = latency_history(problem, n_trials + 4 + repeats * 4, seed=n_trials)
    proposer = OursProposer(problem, method, seed=0, settings=settings)
    times = []
    for k in range(repeats + 1):
        n_done = n_trials if same_data else n_trials - repeats + k
        hist = History(X=[tuple(x) for x in X[:n_done]], Y=list(Y[:n_done]))
        start = n_trials + 4 * k if same_data else n_done
        pending = [tuple(x) for x in X[start : start + 4]]
        if not use_state:
            proposer.state = OptimizerState()
        t = time.perf_counter()
        proposer.ask(hist, pending, Q)
        times.append(time.perf_counter() - t)
    warm = np.array(times[1:])
    return {
        "seconds_p50": float(np.percentile(warm, 50)),
        "seconds_p95": float(np.percentile(warm, 95)),
        "seconds_max": float(warm.max()),
        "seconds_cold": float(times[0]),
        "repeats": repeats,
    }


def plain_botorch_seconds(problem: Problem, n_trials: int, repeats: int) -> dict[str, float]:
    """The issue's reference loop: cold ModelListGP fit, qLogNEHVI (prune_baseline), optimize_acqf
    q=4 sequential with 8 restarts and 256 raw samples on [0, 1]^d, then rounding to bins."""
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from botorch.utils.multi_objective.hypervolume import infer_reference_point
    from gpytorch.mlls import SumMarginalLogLikelihood

    from autopeft.pareto import pareto_mask

    X, Y = latency_history(problem, n_trials + 4, seed=n_trials)
    Xt, Yt = torch.tensor(X[:n_trials]), torch.tensor(Y[:n_trials])
    times = []
    torch.set_num_threads(1)
    for _ in range(repeats):
        t = time.perf_counter()
        model = ModelListGP(*[SingleTaskGP(Xt, Yt[:, j : j + 1], outcome_transform=Standardize(1)) for j in range(2)])
        fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
        acqf = qLogNoisyExpectedHypervolumeImprovement(
            model,
            infer_reference_point(Yt[pareto_mask(Yt)]),
            Xt,
            prune_baseline=True,
            X_pending=torch.tensor(X[n_trials:]),
        )
        bounds = torch.stack([torch.zeros(problem.d), torch.ones(problem.d)]).double()
        optimize_acqf(acqf, bounds, q=Q, num_restarts=8, raw_samples=256, sequential=True)
        times.append(time.perf_counter() - t)
    return {
        "seconds_p50": float(np.median(times)),
        "seconds_p95": float(np.percentile(times, 95)),
        "seconds_max": float(max(times)),
        "seconds_cold": float(times[0]),
        "repeats": repeats,
    }


#: Lever ablation: each row switches one more lever on (the last row is the product's default,
#: the row before it the default when results keep arriving).
LEVERS: list[tuple[str, dict[str, Any], bool, bool]] = [
    (
        "ours, no levers (botorch qLogNEHVI, whole baseline, cold fit on all trials)",
        {"nehvi": "botorch", "max_baseline": 100_000, "fit_points": 100_000, "reuse_hyperparameters": False},
        False,
        False,
    ),
    (
        "+ cached single-candidate qLogNEHVI",
        {"max_baseline": 100_000, "fit_points": 100_000, "reuse_hyperparameters": False},
        False,
        False,
    ),
    (
        "+ baseline capped to 96 best-ranked trials",
        {"fit_points": 100_000, "reuse_hyperparameters": False},
        False,
        False,
    ),
    ("+ hyperparameters fitted on at most 256 trials", {"reuse_hyperparameters": False}, False, False),
    ("+ warm-started fits (state kept between proposals)", {"refit_growth": 0.0}, True, False),
    ("+ lazy refit (every 10% growth; default)", {}, True, False),
    ("+ model reused when only pending trials changed", {}, True, True),
]


# -- driver --------------------------------------------------------------------------------------


def quality(args: argparse.Namespace, problems: dict[str, Problem], log: list[str]) -> tuple[list, list]:
    results, runs = [], []
    checkpoints = sorted({c for c in args.checkpoints if c <= args.budget} | {args.budget})
    for name, problem in problems.items():
        for method in args.methods:
            if method == "saas" and name not in args.saas_problems:
                continue
            seeds = args.seeds[: args.saas_seeds] if method == "saas" else args.seeds
            for seed in seeds:
                out = run(problem, method, seed, args.budget, checkpoints)
                for n, hv in sorted(out["hv"].items()):
                    results.append({"problem": name, "method": method, "seed": seed, "n_trials": n, "hypervolume": hv})
                runs.append(
                    {"problem": name, "method": method, "seed": seed, **{k: v for k, v in out.items() if k != "hv"}}
                )
                _say(
                    log,
                    f"{name:14s} {method:6s} seed {seed}: hv {out['hv'][args.budget]:.5f} "
                    f"dup {out['duplicates']} {out['seconds']:.1f}s (ask max {out['ask_seconds_max']:.2f}s)",
                )
    return results, runs


def latency(args: argparse.Namespace, problems: dict[str, Problem], log: list[str]) -> tuple[list, list]:
    rows, levers = [], []
    for name in args.latency_problems:
        problem = problems.get(name) or PROBLEMS[name]()
        for n in args.latency_trials:
            for method in args.latency_methods:
                if method == "saas" and (n > args.saas_latency_max or name not in args.saas_latency_problems):
                    continue
                reps = args.latency_repeats if method != "saas" else max(1, args.latency_repeats // 3)
                m = time_proposals(problem, n, method, reps)
                rows.append({"problem": name, "n_trials": n, "dims": problem.d, "method": method, **m})
                _say(
                    log,
                    f"latency {name} d={problem.d} n={n} {method}: p50 {m['seconds_p50']:.2f}s "
                    f"p95 {m['seconds_p95']:.2f}s cold {m['seconds_cold']:.2f}s",
                )
    if args.levers:
        problem = problems.get("peft_full") or PROBLEMS["peft_full"]()
        for n in args.lever_trials:
            m = plain_botorch_seconds(problem, n, max(1, args.lever_repeats // 2))
            levers.append(
                {"lever": "plain BoTorch loop (the issue's reference)", "n_trials": n, "dims": problem.d, **m}
            )
            _say(log, f"lever n={n} plain botorch: p50 {m['seconds_p50']:.2f}s")
            for label, settings, use_state, same_data in LEVERS:
                m = time_proposals(problem, n, "gp", args.lever_repeats, settings, use_state, same_data)
                levers.append({"lever": label, "n_trials": n, "dims": problem.d, **m})
                _say(log, f"lever n={n} {label}: p50 {m['seconds_p50']:.2f}s p95 {m['seconds_p95']:.2f}s")
    return rows, levers


def summarise(results: list[dict], problems_info: dict[str, dict], methods: Sequence[str]) -> list[dict]:
    """Mean hypervolume per (problem, budget, method), ratio to the best peer and gap ratios."""
    out = []
    keys = sorted({(r["problem"], r["n_trials"]) for r in results})
    for prob, n in keys:
        means = {}
        for m in methods:
            hv = [r["hypervolume"] for r in results if (r["problem"], r["n_trials"], r["method"]) == (prob, n, m)]
            if hv:
                means[m] = (float(np.mean(hv)), float(np.std(hv)), float(np.min(hv)), len(hv))
        best = problems_info[prob]["max_hypervolume"]
        peers = {m: v[0] for m, v in means.items() if m in PEERS}
        best_peer = max(peers, key=peers.get) if peers else None
        for m, (mean, std, lo, count) in means.items():
            row = {
                "problem": prob,
                "n_trials": n,
                "method": m,
                "mean": mean,
                "std": std,
                "min": lo,
                "seeds": count,
                "gap": best - mean,
                "gap_fraction": (best - mean) / best if best else None,
            }
            if best_peer:
                peer_gap = best - peers[best_peer]
                row.update(
                    best_peer=best_peer,
                    ratio_to_best_peer=mean / peers[best_peer] if peers[best_peer] else None,
                    gap_ratio_to_best_peer=(best - mean) / peer_gap if peer_gap > 0 else None,
                )
            out.append(row)
    return out


def problems_info(problems: dict[str, Problem], runs: list[dict], results: list[dict], log: list[str]) -> dict:
    info = {}
    for name, problem in problems.items():
        best_run = max((r["hypervolume"] for r in results if r["problem"] == name), default=0.0)
        if problem.exact_max_hypervolume is not None:
            t = time.perf_counter()
            exact = problem.exact_max_hypervolume()
            _say(log, f"{name}: exact max hypervolume {exact:.6f} ({time.perf_counter() - t:.1f}s)")
            info[name] = {"max_hypervolume": exact, "exact": True}
        else:
            info[name] = {"max_hypervolume": best_run, "exact": False}
        info[name].update(dims=problem.d, ref_point=list(problem.ref_point), best_found=best_run, **problem.info)
    return info


def markdown(out: dict[str, Any]) -> str:
    """The tables of docs/optimizer.md from a results file."""
    lines = []
    budget = max(r["n_trials"] for r in out["results"])
    methods = [
        m for m in ("gp", "saas", "sobol", "random", "nsga2", "tpe") if any(r["method"] == m for r in out["results"])
    ]
    lines += [f"### Hypervolume at {budget} trials (mean ± sd over seeds; best attainable in the last column)", ""]
    lines += ["| problem | d | " + " | ".join(methods) + " | best attainable |", "|---" * (len(methods) + 3) + "|"]
    summary = [r for r in out["summary"] if r["n_trials"] == budget]
    for prob, info in out["problems"].items():
        cells = []
        for m in methods:
            row = next((r for r in summary if r["problem"] == prob and r["method"] == m), None)
            cells.append(f"{row['mean']:.4g} ± {row['std']:.2g} ({row['seeds']})" if row else "-")
        exact = "exact" if info["exact"] else "best run"
        lines.append(
            f"| {prob} | {info['dims']} | " + " | ".join(cells) + f" | {info['max_hypervolume']:.4g} ({exact}) |"
        )
    lines += ["", f"### gp against the best peer at {budget} trials", ""]
    lines += [
        "| problem | best peer | gp / best peer | gp gap / best peer's gap (target ≤ 0.75) | gp seeds with zero hypervolume |",
        "|---|---|---|---|---|",
    ]
    for prob in out["problems"]:
        row = next((r for r in summary if r["problem"] == prob and r["method"] == "gp"), None)
        if row is None or "best_peer" not in row:
            continue
        zero = sum(
            1
            for r in out["results"]
            if (r["problem"], r["method"], r["n_trials"]) == (prob, "gp", budget) and r["hypervolume"] <= 0
        )
        gap, ratio = row.get("gap_ratio_to_best_peer"), row.get("ratio_to_best_peer")
        lines.append(
            f"| {prob} | {row['best_peer']} | {'-' if ratio is None else f'{ratio:.3f}'} | "
            f"{'-' if gap is None else f'{gap:.2f}'} | {zero} |"
        )
    lines += [
        "",
        "### Duplicate evaluations (total over seeds)",
        "",
        "| problem | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for prob in out["problems"]:
        cells = [
            str(sum(d["duplicates"] for d in out["duplicates"] if (d["problem"], d["method"]) == (prob, m)))
            for m in methods
        ]
        lines.append(f"| {prob} | " + " | ".join(cells) + " |")
    if out["proposal_latency"]:
        lines += [
            "",
            "### Proposal latency, q = 4 (seconds; p50/p95 over warm calls, cold = first call of a study)",
            "",
            "| problem | d | trials | method | p50 | p95 | cold |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in out["proposal_latency"]:
            lines.append(
                f"| {r['problem']} | {r['dims']} | {r['n_trials']} | {r['method']} | {r['seconds_p50']:.2f} | "
                f"{r['seconds_p95']:.2f} | {r['seconds_cold']:.2f} |"
            )
    for run in out.get("latency_side_by_side", []):
        meta = run["metadata"]
        lines += [
            "",
            f"### Proposal latency of {' and '.join(meta['methods'])}, timed side by side (q = 4; seconds)",
            "",
            "| problem | d | trials | " + " | ".join(f"{m} p50 | {m} p95 | {m} cold" for m in meta["methods"]) + " |",
            "|---|---|---|" + "---|---|---|" * len(meta["methods"]),
        ]
        keys = sorted({(r["problem"], r["dims"], r["n_trials"]) for r in run["rows"]}, key=lambda k: (k[1], k[2]))
        for problem, dims, n in keys:
            cells = []
            for m in meta["methods"]:
                r = next(
                    (r for r in run["rows"] if (r["problem"], r["n_trials"], r["method"]) == (problem, n, m)), None
                )
                cells.append(
                    "- | - | -"
                    if r is None
                    else f"{r['seconds_p50']:.2f} | {r['seconds_p95']:.2f} | {r['seconds_cold']:.2f}"
                )
            lines.append(f"| {problem} | {dims} | {n} | " + " | ".join(cells) + " |")
        lines += [
            "",
            (
                f"Command: `{meta['command']}`; started {meta['started']}, {meta['seconds'] / 60:.0f} min; "
                f"{meta['machine']['cpus']} CPUs ({meta['machine']['processor']}), torch {meta['machine']['torch']}, "
                f"1 torch thread; load average (1, 5, 15 min) before {meta['load_average_before']}, "
                f"after {meta['load_average_after']}."
            ),
        ]
    if out["latency_levers"]:
        lines += [
            "",
            "### What each latency lever buys (peft_full, d = 33, q = 4; seconds)",
            "",
            "| lever | trials | p50 | p95 | first call |",
            "|---|---|---|---|---|",
        ]
        for r in out["latency_levers"]:
            lines.append(
                f"| {r['lever']} | {r['n_trials']} | {r['seconds_p50']:.2f} | {r['seconds_p95']:.2f} | "
                f"{r['seconds_cold']:.2f} |"
            )
    meta = out["metadata"]
    lines += [
        "",
        (
            f"Command: `{meta['command']}`; started {meta['started']}, {meta['seconds'] / 60:.0f} min; "
            f"{meta['machine']['cpus']} CPUs ({meta['machine']['processor']}), torch {meta['machine']['torch']}, "
            f"1 torch thread; load average (1, 5, 15 min) before {meta['load_average_before']}, "
            f"before the latency section {meta.get('load_average_before_latency', '?')}, "
            f"after {meta['load_average_after']}."
        ),
    ]
    return "\n".join(lines) + "\n"


def _write_markdown(path: Path | None, out: dict[str, Any]) -> None:
    """The tables to ``path``, or to stdout for ``-`` or no path."""
    text = markdown(out)
    if path is None or str(path) == "-":
        print(text, end="")
    else:
        path.write_text(text)


def _say(log: list[str], line: str) -> None:
    print(line, flush=True)
    log.append(line)


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 40 trials, saas on one problem, gp latency on peft_full, no lever ablation (< 5 min)",
    )
    p.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    p.add_argument("--methods", nargs="+", default=["gp", "saas", "sobol", "random", "nsga2", "tpe"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--saas-seeds", type=int, default=2, help="seeds for saas (its NUTS fits are costly)")
    p.add_argument("--saas-problems", nargs="*", default=list(PROBLEMS), help="problems saas runs on")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--checkpoints", nargs="+", type=int, default=[25, 50, 75, 100])
    p.add_argument("--latency-problems", nargs="*", default=["peft_autopeft", "dtlz2_d16", "peft_full"])
    p.add_argument("--latency-trials", nargs="*", type=int, default=[50, 200, 500])
    p.add_argument(
        "--latency-methods", nargs="+", default=["gp", "saas", "tpe"], help="our methods whose proposals are timed"
    )
    p.add_argument("--latency-repeats", type=int, default=8)
    p.add_argument("--saas-latency-max", type=int, default=50, help="largest n_trials timed for saas")
    p.add_argument(
        "--saas-latency-problems", nargs="*", default=["peft_autopeft"], help="problems saas latency is timed on"
    )
    p.add_argument("--levers", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--lever-trials", nargs="+", type=int, default=[200, 500])
    p.add_argument("--lever-repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    p.add_argument("--report-only", action="store_true", help="only render --markdown from an existing --out file")
    p.add_argument(
        "--latency-only",
        action="store_true",
        help="only time proposals of --latency-methods side by side (no levers) and add them to the --out file",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.saas_seeds, args.budget, args.checkpoints = [0], 1, 40, [20, 40]
        args.saas_problems, args.latency_methods = ["peft_autopeft"], ["gp"]
        args.latency_problems, args.latency_repeats, args.levers = ["peft_full"], 2, False
    return args


def latency_only(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Time ``--latency-methods`` side by side (one process, the same load) and add the run to ``--out``'s
    ``latency_side_by_side``, replacing an earlier run of the same methods; the rest of the file is kept."""
    started, load_before = datetime.datetime.now(datetime.UTC), _load()
    args.levers = False
    rows, _ = latency(args, {}, [])
    out = json.loads(args.out.read_text())
    run = {
        "rows": rows,
        "metadata": {
            "methods": list(args.latency_methods),
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "started": started.isoformat(timespec="seconds"),
            "seconds": (datetime.datetime.now(datetime.UTC) - started).total_seconds(),
            "machine": _machine(),
            "load_average_before": load_before,
            "load_average_after": _load(),
            "torch_threads": 1,
            "repeats": args.latency_repeats,
        },
    }
    runs = [r for r in out.get("latency_side_by_side", []) if r["metadata"]["methods"] != run["metadata"]["methods"]]
    out["latency_side_by_side"] = [*runs, run]
    args.out.write_text(json.dumps(out, indent=1))
    print(f"added {len(rows)} latency rows to {args.out}")
    if args.markdown:
        _write_markdown(args.markdown, out)
    return 0


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        _write_markdown(args.markdown, json.loads(args.out.read_text()))
        return 0
    torch.set_num_threads(1)
    if args.latency_only:
        return latency_only(args, argv)
    started, load_before = datetime.datetime.now(datetime.UTC), _load()
    log: list[str] = []
    problems = {name: PROBLEMS[name]() for name in args.problems}
    results, runs = quality(args, problems, log)
    info = problems_info(problems, runs, results, log)
    partial = args.out.with_suffix(".quality.json")  # kept in case the latency phase is interrupted
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps({"results": results, "problems": info, "runs": runs}, indent=1, default=str))
    load_latency = _load()
    latency_rows, levers = latency(args, problems, log)
    out = {
        "results": results,
        "proposal_latency": latency_rows,
        "latency_levers": levers,
        "problems": info,
        "duplicates": [{k: r[k] for k in ("problem", "method", "seed", "duplicates")} for r in runs],
        "runs": [{k: v for k, v in r.items() if k != "best_front"} for r in runs],
        "summary": summarise(results, info, args.methods),
        "metadata": {
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "started": started.isoformat(timespec="seconds"),
            "seconds": (datetime.datetime.now(datetime.UTC) - started).total_seconds(),
            "machine": _machine(),
            "load_average_before": load_before,
            "load_average_after": _load(),
            "load_average_before_latency": load_latency,
            "torch_threads": 1,
            "workers_simulated": Q,
            "settings": parse_optimizer().model_dump(),
            "quick": args.quick,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    partial.unlink(missing_ok=True)
    print(f"wrote {args.out} in {out['metadata']['seconds']:.0f}s")
    if args.markdown:
        _write_markdown(args.markdown, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
