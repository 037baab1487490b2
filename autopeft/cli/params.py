"""``autopeft params``: price a configuration before running it."""

from __future__ import annotations

import argparse

from autopeft.cli._output import add_model_argument, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="count the parameters a configuration trains on a model")
    add_model_argument(p)
    p.add_argument("--config", required=True, metavar="JSON_OR_FILE", help="configuration JSON, inline or a file")
    p.add_argument("--num-labels", type=int, default=2, help="classes of the task head (default: 2)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.accounting import estimate
    from autopeft.config import load_config
    from autopeft.encoder import resolve_model_dir
    from autopeft.errors import ConfigError
    from autopeft.shape import model_shape

    if args.num_labels < 1:
        raise ConfigError(f"--num-labels must be at least 1, got {args.num_labels}")
    config = load_config(args.config)
    model_dir = resolve_model_dir(args.model)
    shape = model_shape(model_dir, args.num_labels)
    count = estimate(config, shape)
    if args.json:
        print_json({"model": str(model_dir), "config": config.to_json(), **count.to_json()})
        return 0
    rows = [[name, n, 100.0 * n / count.backbone_params] for name, n in count.by_family.items()]
    rows += [
        ["peft total", count.peft_params, 100.0 * count.param_fraction],
        ["after merging", count.merged_params, 100.0 * count.merged_params / count.backbone_params],
        ["task head", count.head_params, 100.0 * count.head_params / count.backbone_params],
        ["backbone", count.backbone_params, 100.0],
    ]
    print(f"model: {model_dir} ({shape.model_type}, {shape.n_layers} layers, hidden {shape.hidden})")
    print(table(rows, ["family", "params", "% of backbone"]))
    return 0
