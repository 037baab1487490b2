"""``autopeft export DIR --to peft|merged|onnx OUT``: a saved trial as an HF peft adapter, a plain transformers
model, or an ONNX graph with its tokenizer."""

from __future__ import annotations

import argparse

HOW = {
    "peft": "load it with PeftModel.from_pretrained(base_model, OUT)",
    "merged": "load it with AutoModelForSequenceClassification.from_pretrained(OUT)",
    "onnx": "run it with onnxruntime and tokenizers, or serve it with `autopeft serve-model OUT`",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trial saved by `autopeft train --save` as an HF peft adapter, a plain transformers model "
        "or an ONNX graph",
        description="peft: adapter_config.json + adapter_model.safetensors for PeftModel.from_pretrained (LoRA, "
        "DoRA, (IA)3, LoRA with BitFit on every layer). merged: the configuration folded into the weights, a model "
        "directory for AutoModelForSequenceClassification.from_pretrained (LoRA, DoRA, (IA)3, BitFit, FISH, full). "
        "onnx: any configuration, task head included, as model.onnx (inputs input_ids, attention_mask and "
        "token_type_ids where the model has them; dynamic batch and sequence) with tokenizer.json and the label "
        "names, checked against torch before it is kept (needs the 'export' extra). Anything else is refused with "
        "the reason (exit 2).",
    )
    p.add_argument("trained", metavar="TRAINED_DIR", help="directory written by `autopeft train --save`")
    p.add_argument("--to", required=True, choices=["peft", "merged", "onnx"], help="the form to write")
    p.add_argument("out", metavar="OUT", help="new directory to write")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="onnx only: onnxruntime's dynamic quantisation of the weights to int8",
    )
    p.add_argument(
        "--model", metavar="PATH", default=None, help="base model directory (default: the one it was trained on)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from autopeft.export import export_trained

    out = export_trained(args.trained, args.to, args.out, quantize=args.quantize, model=args.model)
    print(f"exported to {out} ({HOW[args.to]})")
    return 0
