"""``autopeft space show | sample``: look inside a search space."""

from __future__ import annotations

import argparse
import json

from autopeft.cli._output import add_model_argument, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="describe a search space or sample configurations from it")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="list a space's dimensions and their values")
    show.add_argument("space", metavar="NAME", help="autopeft, grouped, full, or a JSON space (inline or file)")
    add_model_argument(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=run_show)
    sample = verbs.add_parser("sample", help="print random configurations, one JSON per line")
    sample.add_argument("space", metavar="NAME", help="autopeft, grouped, full, or a JSON space (inline or file)")
    add_model_argument(sample)
    sample.add_argument("-n", type=int, default=5, help="how many (default: 5)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sample.add_argument("--params", action="store_true", help="add each configuration's param_fraction")
    sample.set_defaults(run=run_sample)


def _space(args: argparse.Namespace):
    from autopeft.encoder import model_shape
    from autopeft.space import build_space, load_space_arg

    return build_space(load_space_arg(args.space), model_shape(args.model))


def run_show(args: argparse.Namespace) -> int:
    space = _space(args)
    info = space.describe()
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
    return 0


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
