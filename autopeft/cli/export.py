"""``autopeft export DIR --to peft|merged OUT``: a saved trial as an HF peft adapter or a plain transformers model."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trial saved by `autopeft train --save` as an HF peft adapter or a plain transformers model",
        description="peft: adapter_config.json + adapter_model.safetensors for PeftModel.from_pretrained (LoRA, "
        "DoRA, (IA)3, LoRA with BitFit on every layer). merged: the configuration folded into the weights, a model "
        "directory for AutoModelForSequenceClassification.from_pretrained (LoRA, DoRA, (IA)3, BitFit, FISH, full). "
        "Anything else is refused with the reason (exit 2).",
    )
    p.add_argument("trained", metavar="TRAINED_DIR", help="directory written by `autopeft train --save`")
    p.add_argument("--to", required=True, choices=["peft", "merged"], help="the form to write")
    p.add_argument("out", metavar="OUT", help="new directory to write")
    p.add_argument(
        "--model", metavar="PATH", default=None, help="base model directory (default: the one it was trained on)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.export import export_trained

    out = export_trained(args.trained, args.to, args.out, model=args.model)
    how = (
        "load it with PeftModel.from_pretrained(base_model, OUT)"
        if args.to == "peft"
        else "load it with AutoModelForSequenceClassification.from_pretrained(OUT)"
    )
    print(f"exported to {out} ({how})")
    return 0
