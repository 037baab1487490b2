"""What ``autopeft export --to onnx --quantize int8`` costs in accuracy and gains in speed, on the bundled MiniLM.

Trains one configuration of the default space's families briefly on SST-2 with ``autopeft train`` (a CPU-sized
budget), exports it with ``autopeft export --to onnx`` with and without ``--quantize int8``, and scores the SST-2
dev file three ways: autopeft's own prediction (torch), the fp32 graph and the int8 graph (onnxruntime, through
:class:`autopeft.onnx_model.OnnxModel`). Speed: rows per second at batch 32 and milliseconds per single row,
each the median of ``--repeats`` timed passes on ``--threads`` threads. Writes
benchmarks/results/onnx_int8.json and prints a table (docs/production.md, "ONNX and int8").

    python -m benchmarks.onnx_int8 --data ../shared/data/glue
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.records import RESULTS, command_line, machine, now, package_version, save_json, versions

CONFIG = {
    "serial_adapter": {"size": 32},
    "parallel_adapter": {"size": 16, "layers": [2, 3, 4, 5]},
    "prefix": {"length": 8, "layers": [3, 4, 5]},
}


def _autopeft(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "autopeft", *args], check=True)


def _timed(run: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``repeats`` calls (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _accuracy(labels: list[Any], gold: list[str]) -> float:
    return sum(a == b for a, b in zip(labels, gold, strict=True)) / len(gold)


def measure(work: Path, data: Path, steps: int, repeats: int, threads: int) -> dict[str, Any]:
    import torch

    from autopeft.onnx_model import OnnxModel
    from autopeft.tasks.files import read_columns
    from autopeft.train.saved import load_trained

    saved, fp32_dir, int8_dir = work / "trained", work / "onnx-fp32", work / "onnx-int8"
    started = time.perf_counter()
    _autopeft("train", "--task", "sst2", "--data", str(data), "--config", json.dumps(CONFIG), "--max-steps",
              str(steps), "--batch-size", "32", "--max-length", "64", "--lr", "1e-3", "--max-train-examples",
              str(steps * 32), "--save", str(saved), "--no-progress")  # fmt: skip
    trained_s = time.perf_counter() - started
    _autopeft("export", str(saved), "--to", "onnx", str(fp32_dir))
    _autopeft("export", str(saved), "--to", "onnx", "--quantize", "int8", str(int8_dir))

    torch.set_num_threads(threads)
    ours = load_trained(saved)
    rows = read_columns(ours.task, data / "SST-2" / "dev.tsv", need_label=True)
    texts, gold = list(rows["text_a"]), list(rows["labels"])
    batch = texts[:32]
    fp32, int8 = OnnxModel.load(fp32_dir, threads=threads), OnnxModel.load(int8_dir, threads=threads)
    runners: dict[str, dict[str, Callable[..., Any]]] = {
        "torch (autopeft predict)": {"predict": ours.predict, "logits": lambda t: ours.logits({"text_a": t})},
        "onnx fp32": {"predict": lambda t: fp32.predict(t)[0], "logits": fp32.logits},
        "onnx int8": {"predict": lambda t: int8.predict(t)[0], "logits": int8.logits},
    }
    results = {}
    for name, run in runners.items():
        results[name] = {
            "dev_accuracy": round(_accuracy(run["predict"](texts), gold), 4),
            "rows_per_s_batch32": round(len(batch) / _timed(lambda r=run: r["logits"](batch), repeats), 1),
            "ms_per_row_batch1": round(1000 * _timed(lambda r=run: r["logits"](texts[:1]), repeats), 2),
        }
    base = results["onnx fp32"]
    for name in ("onnx int8",):
        results[name]["speedup_vs_fp32_batch32"] = round(
            results[name]["rows_per_s_batch32"] / base["rows_per_s_batch32"], 2
        )
        results[name]["accuracy_change_vs_fp32"] = round(results[name]["dev_accuracy"] - base["dev_accuracy"], 4)
    sizes = {p.name: round((p / "model.onnx").stat().st_size / 2**20, 1) for p in (fp32_dir, int8_dir)}
    return {
        "config": CONFIG,
        "training": {"task": "sst2", "max_steps": steps, "batch_size": 32, "max_length": 64, "learning_rate": 1e-3,
                     "max_train_examples": steps * 32, "seconds": round(trained_s, 1)},  # fmt: skip
        "dev_rows": len(texts),
        "threads": threads,
        "repeats": repeats,
        "graph_mib": sizes,
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/glue"), help="GLUE root with SST-2")
    p.add_argument("--steps", type=int, default=300, help="training steps (batch 32)")
    p.add_argument("--repeats", type=int, default=20, help="timed passes per figure (the median is kept)")
    p.add_argument("--threads", type=int, default=2, help="threads for torch and onnxruntime")
    p.add_argument("--out", type=Path, default=RESULTS / "onnx_int8.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autopeft-onnx-int8-") as tmp:
        result = measure(Path(tmp), args.data.resolve(), args.steps, args.repeats, args.threads)
    result.update(
        benchmark="onnx_int8",
        command=command_line(argv),
        date=now(),
        machine=machine("cpu"),
        versions=versions() | {"onnxruntime": package_version("onnxruntime"), "onnx": package_version("onnx")},
    )
    save_json(args.out, result)
    print("| model | dev accuracy | rows/s (batch 32) | ms/row (batch 1) |\n|---|---|---|---|")
    for name, r in result["results"].items():
        print(f"| {name} | {r['dev_accuracy']:.4f} | {r['rows_per_s_batch32']} | {r['ms_per_row_batch1']} |")
    print(f"graph MiB: {result['graph_mib']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
