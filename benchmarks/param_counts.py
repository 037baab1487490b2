"""Parameter counts of reference configurations on the bundled MiniLM, beside HF peft's.

    python -m benchmarks.param_counts        # prints a table, writes benchmarks/results/param_counts.json

For LoRA, DoRA, (IA)³ and prefix tuning HF peft builds the same configuration and its trainable
count (minus the task head, which both train) is printed beside ours.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
from pathlib import Path

REFERENCE = [
    ("LoRA r=8 (query, value)", {"lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"]}}),
    ("DoRA r=8 (query, value)", {"lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"], "dora": True}}),
    ("(IA)3 (key, value, feed-forward)", {"ia3": {}}),
    ("prefix 16", {"prefix": {"length": 16}}),
    ("prefix 16, MLP 512 while training", {"prefix": {"length": 16, "reparameterize": True, "hidden": 512}}),
    ("Pfeiffer adapter 64", {"serial_adapter": {"size": 64}}),
    ("AdaMix 4 experts x 64", {"serial_adapter": {"size": 64, "experts": 4}}),
    ("parallel adapter 32, s=4", {"parallel_adapter": {"size": 32}}),
    ("BitFit", {"bitfit": {}}),
    ("FISH 0.5%", {"fish": {"fraction": 0.005}}),
    ("full fine-tuning", {"full": {}}),
]


def peft_config(config: dict):
    import peft

    if "lora" in config:
        c = config["lora"]
        return peft.LoraConfig(
            task_type="SEQ_CLS",
            r=c["rank"],
            lora_alpha=c["alpha"],
            target_modules=c["targets"],
            use_dora=c.get("dora", False),
        )
    if "ia3" in config:  # keys, values, and the feed-forward output layer scaled on its input
        ffn = r".*\.layer\.\d+\.output\.dense$"
        return peft.IA3Config(
            task_type="SEQ_CLS", target_modules=rf"(.*\.(key|value)$)|({ffn})", feedforward_modules=ffn
        )
    if "prefix" in config:
        c = config["prefix"]
        return peft.PrefixTuningConfig(
            task_type="SEQ_CLS",
            num_virtual_tokens=c["length"],
            prefix_projection=c.get("reparameterize", False),
            encoder_hidden_size=c.get("hidden", 384),
        )
    return None


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    import peft
    import torch
    import transformers

    from autopeft.accounting import estimate
    from autopeft.encoder import load_model, resolve_model_dir
    from autopeft.handle import inject
    from autopeft.shape import model_shape

    model_dir = resolve_model_dir(None)
    base = load_model(model_dir, num_labels=2)
    shape = model_shape(None)
    rows = []
    for name, config in REFERENCE:
        est = estimate(config, shape)
        live = None
        if "fish" not in config:  # a FISH mask needs data; its count is the mask size by construction
            live = inject(copy.deepcopy(base), config).accounting().peft_params
        oracle = None
        if (pc := peft_config(config)) is not None:
            wrapped = peft.get_peft_model(copy.deepcopy(base), pc)
            oracle = sum(p.numel() for p in wrapped.parameters() if p.requires_grad) - shape.head_params
        rows.append(
            {
                "name": name,
                "config": config,
                "peft_params": est.peft_params,
                "merged_params": est.merged_params,
                "live_count": live,
                "hf_peft": oracle,
                "param_fraction": est.param_fraction,
            }
        )
    print(f"bundled MiniLM: backbone {shape.backbone_params:,} parameters, head {shape.head_params:,}")
    print("| configuration | peft_params | after merging | HF peft | param_fraction |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        hf = f"{r['hf_peft']:,}" if r["hf_peft"] is not None else "not in peft"
        print(
            f"| {r['name']} | {r['peft_params']:,} | {r['merged_params']:,} | {hf} | {100 * r['param_fraction']:.3f}% |"
        )
    out = Path(__file__).parent / "results" / "param_counts.json"
    out.write_text(
        json.dumps(
            {
                "command": "python -m benchmarks.param_counts",
                "date": datetime.date.today().isoformat(),
                "machine": platform.processor() or platform.machine(),
                "versions": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "peft": peft.__version__,
                },
                "backbone_params": shape.backbone_params,
                "head_params": shape.head_params,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
