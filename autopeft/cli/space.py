"""``autopeft space show | sample``: look inside a search space."""

from __future__ import annotations

import argparse
import json

from autopeft.cli._output import add_model_argument, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="describe a search space or sample configurations from it")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="list a space's dimensions and their values")
    show.add_argument("space", metavar="NAME", help="autopeft, grouped, full, lora, or a JSON space (inline or file)")
    add_model_argument(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument(
        "--max-param-fraction", type=float, default=None, metavar="F", help="count only configurations under F"
    )
    show.add_argument(
        "--min-param-fraction", type=float, default=None, metavar="F", help="count only configurations over F"
    )
    show.set_defaults(run=run_show)
    sample = verbs.add_parser("sample", help="print random configurations, one JSON per line")
    sample.add_argument("space", metavar="NAME", help="autopeft, grouped, full, lora, or a JSON space (inline or file)")
    add_model_argument(sample)
    sample.add_argument("-n", type=int, default=5, help="how many (default: 5)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sample.add_argument("--params", action="store_true", help="add each configuration's param_fraction")
    sample.set_defaults(run=run_sample)


def _space(args: argparse.Namespace):
    from autopeft.shape import model_shape
    from autopeft.space import build_space, load_space_arg

    return build_space(load_space_arg(args.space), model_shape(args.model))


def run_show(args: argparse.Namespace) -> int:
    space = _space(args)
    info = space.describe()
    budget = _budget(args)
    if budget is not None:
        from autopeft.optimize.budget import budget_size, check_budget

        check_budget(space, budget)
        info["budget"] = {"constraints": budget.model_dump(), **budget_size(space, budget).to_json()}
    if args.json:
        print_json(info)
        return 0
    print(f"space {info['name']!r}: d = {info['d']} on {info['n_layers']} layers")
    print("layer groups: " + "  ".join(f"g{i}={g}" for i, g in enumerate(info["groups"])))
    rows = [[d["name"], len(d["values"]), ", ".join(map(str, d["values"]))] for d in info["dims"]]
    print(table(rows, ["dimension", "n", "values"], align="lrl"))
    if info["fixed"]:
        print("fixed: " + ", ".join(f"{k}={v}" for k, v in info["fixed"].items()))
    if info["size"]:
        print(f"configurations: {info['size']:,}")
    if budget is not None:
        b = info["budget"]
        if not b["exact"] and not b["share_within_budget"]:
            count = f"none of {b['samples']:,} samples: a small corner of the space (proposals are moved into it)"
        else:
            within = f"{b['within_budget']:,}" if b["within_budget"] is not None else "?"
            how = "" if b["exact"] else f", estimated from {b['samples']:,} samples"
            count = f"{within} ({100 * b['share_within_budget']:.3g}%{how})"
        print(f"within {budget.describe()}: {count}")
    return 0


def _budget(args: argparse.Namespace):
    """The ``--max/--min-param-fraction`` budget, or None."""
    if args.max_param_fraction is None and args.min_param_fraction is None:
        return None
    from autopeft.errors import SpaceError
    from autopeft.inputs import validate_object
    from autopeft.optimize import ParamBudget

    body = {"max_param_fraction": args.max_param_fraction, "min_param_fraction": args.min_param_fraction}
    return validate_object(ParamBudget, body, "parameter budget", SpaceError)


def run_sample(args: argparse.Namespace) -> int:
    from autopeft.accounting import estimate
    from autopeft.errors import SpaceError

    if args.n < 0:
        raise SpaceError(f"-n must be >= 0, got {args.n}")
    space = _space(args)
    for config in space.sample(args.n, args.seed):
        line = config.to_json()
        if args.params:
            line = {"config": line, "param_fraction": estimate(config, space.shape).param_fraction}
        print(json.dumps(line))
    return 0
