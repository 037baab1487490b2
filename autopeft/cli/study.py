"""``autopeft study create | list | show | trials | pareto | stop | resume | retrain``: studies on a server over HTTP.

``create`` reads the model's ``config.json`` here (when the model path is readable on this
machine) and sends it along as ``model_config``, so the server knows the model's shape
even when only the workers can see the model.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from autopeft.cli._output import print_json, table
from autopeft.trial_state import TrialState

#: A state's column in the study list, and its words in one study's summary, where they are not its name.
_STATE_COLUMNS = {TrialState.COMPLETED: "done"}
_STATE_WORDS = {TrialState.STOPPED: "stopped early"}

DEFAULT_SERVER = "http://127.0.0.1:8000"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="create, list, inspect, stop or retrain studies on a server")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = _verb(verbs, "create", "create a study from a JSON file or inline JSON", run_create)
    create.add_argument("study", metavar="FILE_OR_JSON", help="the study: a JSON file or inline JSON")
    _verb(verbs, "list", "list the server's studies", run_list)
    for name, help_text, fn in (
        ("show", "one study: state, counts, best metric, hypervolume", run_show),
        ("trials", "a study's trials", run_trials),
        ("pareto", "a study's Pareto front", run_pareto),
        ("stop", "stop a study: no proposals, no trials handed out (queued ones wait for a resume)", run_stop),
        ("resume", "resume a stopped study, or one that paused itself after repeated failures", run_resume),
    ):
        v = _verb(verbs, name, help_text, fn)
        v.add_argument("id", type=int, metavar="ID", help="study id")
        if name == "trials":
            v.add_argument("--state", choices=[s.value for s in TrialState], default=None)
    retrain = _verb(
        verbs, "retrain", "train a trial's configuration on the whole training file, scored on dev", run_retrain
    )
    retrain.add_argument("id", type=int, metavar="ID", help="study id")
    retrain.add_argument(
        "--trial", required=True, metavar="N|best", help="the trial's number in the study, or best (best front metric)"
    )
    retrain.add_argument(
        "--max-param-fraction", type=float, default=None, metavar="F", help="with --trial best: the best point under F"
    )
    retrain.add_argument("--save", required=True, metavar="OUT", help="new directory for the trained weights")
    retrain.add_argument("--seeds", type=int, default=1, help="train with this many seeds (the study's seed on)")
    retrain.add_argument("--data", metavar="DIR", default=None, help="data directory when the task names none")
    retrain.add_argument("--model", metavar="PATH", default=None, help="the model here (default: the study's)")
    retrain.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    retrain.add_argument("--no-progress", action="store_true", help="no progress bars")


def _verb(verbs: Any, name: str, help_text: str, fn: Any) -> argparse.ArgumentParser:
    v = verbs.add_parser(name, help=help_text)
    v.add_argument(
        "--server", default=os.environ.get("AUTOPEFT_SERVER", DEFAULT_SERVER), help="server URL (env AUTOPEFT_SERVER)"
    )
    v.add_argument("--api-key", default=None, help="API key (default: $AUTOPEFT_API_KEY)")
    v.add_argument("--json", action="store_true", help="print the server's JSON")
    v.set_defaults(run=fn, extras=("worker",))
    return v


def request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """One call to the server (``path`` below ``/api/v1``): its JSON answer, or
    :class:`~autopeft.client.ServerError` with the server's message."""
    from autopeft.client import ServerClient

    key = args.api_key or os.environ.get("AUTOPEFT_API_KEY")
    with ServerClient(args.server, key, timeout=120.0) as client:
        return client.call(method, path, body)


def load_study(text_or_path: str) -> dict[str, Any]:
    """A study body: a JSON file or inline JSON."""
    from autopeft.inputs import load_json_arg

    return load_json_arg(text_or_path, "study")


def with_model_config(body: dict[str, Any]) -> dict[str, Any]:
    """Add the local model's config.json as ``model_config`` unless the body has one (or it is unreadable here)."""
    from autopeft.encoder import read_config_json, resolve_model_dir
    from autopeft.errors import ModelError

    if body.get("model_config") is not None:
        return body
    try:
        config = read_config_json(resolve_model_dir(body.get("model")))
    except ModelError:
        return body  # the server may be able to read it
    return {**body, "model_config": config}


def answer(args: argparse.Namespace, method: str, path: str, render: Callable[[Any], None], body: Any = None) -> int:
    """Make one call and print its answer: the server's JSON with ``--json``, else ``render(answer)``."""
    reply = request(args, method, path, body)
    if args.json:
        print_json(reply)
    else:
        render(reply)
    return 0


def run_create(args: argparse.Namespace) -> int:
    return answer(args, "POST", "/studies", _print_created, with_model_config(load_study(args.study)))


def run_list(args: argparse.Namespace) -> int:
    return answer(args, "GET", "/studies", _print_studies)


def run_show(args: argparse.Namespace) -> int:
    return answer(args, "GET", f"/studies/{args.id}", _print_study)


def run_trials(args: argparse.Namespace) -> int:
    query = f"?state={args.state}" if args.state else ""
    return answer(args, "GET", f"/studies/{args.id}/trials{query}", _print_trials)


def run_pareto(args: argparse.Namespace) -> int:
    return answer(args, "GET", f"/studies/{args.id}/pareto", _print_front)


def run_stop(args: argparse.Namespace) -> int:
    def said(s: dict[str, Any]) -> None:
        print(
            f"study {s['id']} stopped; {s['counts']['running']} trials still running may report, "
            f"{s['counts']['queued']} queued wait (autopeft study resume {s['id']} hands them out again)"
        )

    return answer(args, "POST", f"/studies/{args.id}/stop", said)


def run_resume(args: argparse.Namespace) -> int:
    return answer(args, "POST", f"/studies/{args.id}/resume", lambda s: print(f"study {s['id']} is {s['state']}"))


def run_retrain(args: argparse.Namespace) -> int:
    from autopeft.errors import ConfigError

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    from autopeft.saving import check_save_path

    out = check_save_path(args.save)
    study = request(args, "GET", f"/studies/{args.id}")
    trial = _chosen_trial(args, study)
    from autopeft.tasks.spec import resolve_task
    from autopeft.train.retrain import summarise, train_final
    from autopeft.train.saved import save_trained

    task = resolve_task(study["task"], args.data)
    first = int(study["training"].get("seed", 0))
    seeds = list(range(first, first + args.seeds))
    trained, saved = [], []
    for seed in seeds:
        model = args.model or study["model"]
        settings = {"seed": seed, "device": args.device, "progress": not args.no_progress}
        one = train_final(task, model, trial["config"], study["training"], **settings)
        trained.append(one)
        saved.append(save_trained(one, out if len(seeds) == 1 else out / f"seed-{seed}"))
    summary = summarise(trained, seeds)
    body = {
        "study_id": args.id,
        "trial": trial["number"],
        "config": trial["config"],
        **summary.to_json(),
        "saved": [str(p) for p in saved],
    }
    if len(seeds) > 1:
        (out / "summary.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print_json(body)
        return 0
    where = f"search {trial['metric']:.4f}" if trial.get("metric") is not None else "not completed in the study"
    print(f"study {args.id} trial #{trial['number']} ({where}), retrained on the whole training file:")
    for seed, value, path in zip(seeds, summary.values, saved, strict=True):
        print(f"  seed {seed}: dev {summary.metric_name} {value:.4f}  saved to {path}")
    if len(seeds) > 1:
        print(f"  mean {summary.mean:.4f} ± {summary.std:.4f} over {len(seeds)} seeds ({out / 'summary.json'})")
    return 0


def _chosen_trial(args: argparse.Namespace, study: dict[str, Any]) -> dict[str, Any]:
    """The trial ``--trial`` names: a number, or ``best`` on the front (under ``--max-param-fraction``)."""
    from autopeft.errors import ConfigError

    if args.trial != "best":
        if args.max_param_fraction is not None:
            raise ConfigError("--max-param-fraction picks among the front: use it with --trial best")
        try:
            number = int(args.trial)
        except ValueError:
            raise ConfigError(f"--trial must be a trial number or best, got {args.trial!r}") from None
        trials = request(args, "GET", f"/studies/{args.id}/trials?limit=100000")["data"]
        found = next((t for t in trials if t["number"] == number), None)
        if found is None:
            raise ConfigError(f"study {args.id} has no trial #{number} (it has {len(trials)} trials, #0..)")
        return found
    front = request(args, "GET", f"/studies/{args.id}/pareto")["data"]  # best metric first
    limit = args.max_param_fraction
    fitting = [t for t in front if limit is None or t["param_fraction"] <= limit]
    if not fitting:
        what = "no completed trial" if not front else f"no front point with param_fraction <= {limit:g}"
        raise ConfigError(f"study {args.id} has {what}")
    return fitting[0]


def _print_created(study: dict[str, Any]) -> None:
    print(
        f"study {study['id']} created: {study['name']!r}, space {study['space_name']} (d={study.get('d')}), "
        f"{study['max_trials']} trials, optimizer {study['optimizer'].get('method')}"
    )


def _print_studies(page: dict[str, Any]) -> None:
    rows = [
        [
            s["id"],
            s["name"],
            s["task"].get("name", ""),
            s["space_name"],
            s["state"],
            *(s["counts"].get(state, 0) for state in TrialState),
            _num(s["best_metric"]),
            round(s["hypervolume"], 4),
        ]
        for s in page["data"]
    ]
    heads = ["id", "name", "task", "space", "state", *(_STATE_COLUMNS.get(s, s.value) for s in TrialState)]
    heads += ["best", "hypervolume"]
    print(table(rows, heads, align="rllll" + "r" * (len(heads) - 5)) if rows else "no studies")


def _print_study(s: dict[str, Any]) -> None:
    c = s["counts"]
    print(
        f"study {s['id']} {s['name']!r}: {s['state']}, task {s['task'].get('name')}, model {s['model'] or 'bundled MiniLM'}"
    )
    print(f"space {s['space_name']} (d={s.get('d')}), optimizer {s['optimizer'].get('method')}, seed {s['seed']}")
    print(
        f"trials {s['n_trials']}/{s['max_trials']}: "
        + ", ".join(f"{c.get(state, 0)} {_STATE_WORDS.get(state, state.value)}" for state in TrialState)
    )
    best = (
        "no completed trial yet"
        if s["best_trial_id"] is None
        else f"best metric {_num(s['best_metric'])} (trial {s['best_trial_id']})"
    )
    print(f"{best}, hypervolume {s['hypervolume']:.4f}, elapsed {s['elapsed_s'] / 60:.1f} min")
    if s.get("warm_start"):
        print(warm_start_line(s["warm_start"]))
    rule = s.get("early_stopping") or {}
    if rule.get("enabled"):
        print(
            f"early stopping on: after {rule['grace']:g} of the budget, below the {rule['quantile']:g} quantile of "
            f">= {rule['min_peers']} smaller trials by more than {rule['margin']:g}"
        )
    if s.get("proposal_error"):
        print(f"proposer error: {s['proposal_error']}")
    if s["state"] == "paused":
        print(f"paused: {s['pause_reason']}")
        print(f"fix the workers (see the failures below), then: autopeft study resume {s['id']}")
    if s.get("failures"):
        print(failure_table(s["failures"]))


def warm_start_line(warm: dict[str, Any]) -> str:
    """``warm start from study 3 'sst2 gp' (sst2, done): 4 earlier front configurations trained again (at most 8)``."""
    sources = warm.get("sources") or [{"id": i} for i in warm["studies"]]
    named = []
    for src in sources:
        if src.get("name") is None and "sources" in warm and warm["sources"] is not None:
            named.append(f"study {src['id']} (deleted)")
        elif src.get("name") is None:
            named.append(f"study {src['id']}")
        else:
            named.append(f"study {src['id']} {src['name']!r} ({src['task']}, {src['state']})")
    limit = "n_initial" if warm.get("max_configs") is None else warm["max_configs"]
    done = warm.get("configs")
    tail = f": {done} earlier front configurations trained again (at most {limit})" if done is not None else ""
    return f"warm start from {', '.join(named)}{tail}"


def failure_table(groups: list[dict[str, Any]]) -> str:
    """Failed trials grouped by cause: count, first trial, its worker, the error's last line."""
    rows = [[g["count"], g["first_trial_number"], g["worker_id"] or "", g["error"]] for g in groups]
    total = sum(g["count"] for g in groups)
    head = f"failures ({total} trial{'s' if total != 1 else ''}, {len(groups)} cause{'s' if len(groups) != 1 else ''}):"
    return head + "\n" + table(rows, ["count", "first #", "worker", "error"], align="rrll")


def _print_trials(page: dict[str, Any]) -> None:
    print(_trial_table(page["data"]) if page["data"] else "no trials")


def _print_front(front: dict[str, Any]) -> None:
    metric = front.get("metric_name") or "metric"
    ref = front.get("reference", {})
    print(
        f"{front['count']} non-dominated trials by {metric} and parameters; hypervolume {front['hypervolume']:.4f} "
        f"(from {metric} {ref.get('metric', 0):g} and {100 * ref.get('param_fraction', 1):g}% of the parameters)"
    )
    if front["data"]:
        print(_trial_table(front["data"], metric))


def _trial_table(trials: list[dict[str, Any]], metric: str = "metric") -> str:
    rows = [
        [
            t["id"],
            t["number"],
            t["state"],
            _num(t["metric"]),
            _pct(t["param_fraction"]),
            "" if t.get("last_step") is None else t["last_step"],
            t["worker_id"] or "",
            t["label"] or t["source"],
            t.get("summary") or json.dumps(t["config"], separators=(",", ":")),  # the dashboard's one line
        ]
        for t in trials
    ]
    heads = ["id", "#", "state", metric, "params %", "step", "worker", "source", "config"]
    return table(rows, heads, align="rrlrrrlll")


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.4g}"
