"""The reference methods a search must beat, the learning rates they train with, and the floor of
every metric: the majority class. The baselines command measures them; the experiments compare with them."""

from __future__ import annotations

from typing import Any

#: The GLUE tasks of the benchmarks, and their names in pages.
TASK_LABELS = {"rte": "RTE", "mrpc": "MRPC", "sst2": "SST-2"}

METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("full fine-tuning", {"full": {}}),
    "lora": ("LoRA r=8 (query, value)", {"lora": {"rank": 8, "alpha": 16, "targets": ["query", "value"]}}),
    "adapter": ("Pfeiffer adapter 64", {"serial_adapter": {"size": 64}}),
    "prefix": ("prefix 16", {"prefix": {"length": 16}}),
    "bitfit": ("BitFit", {"bitfit": {}}),
    "fish": ("FISH 0.5%", {"fish": {"fraction": 0.005, "samples": 1024}}),
    "parallel": ("parallel adapter 64", {"parallel_adapter": {"size": 64}}),
    "adamix": ("AdaMix adapter 64 x4", {"serial_adapter": {"size": 64, "experts": 4}}),
}

#: Peak learning rate per method (task head included). ``standard``: common choices of each method's
#: paper/code for budgets of several epochs. ``short``: for a few hundred steps, where the standard
#: rates leave most methods at the majority class (measured: see docs/baselines.md).
LEARNING_RATES = {
    "standard": {
        "full": 2e-5,
        "lora": 5e-4,
        "adapter": 5e-4,
        "prefix": 5e-3,
        "bitfit": 1e-3,
        "fish": 1e-4,
        "parallel": 5e-4,
        "adamix": 5e-4,
    },
    "short": {
        "full": 5e-5,
        "lora": 1e-3,
        "adapter": 1e-3,
        "prefix": 1e-2,
        "bitfit": 5e-3,
        "fish": 5e-4,
        "parallel": 1e-3,
        "adamix": 1e-3,
    },
}


def majority_dev_metrics(task: str, data_dir: str | None) -> dict[str, float]:
    """Dev metrics of always predicting the most frequent training label: the floor to beat."""
    from collections import Counter

    from autopeft.tasks import compute_metrics, read_labeled, resolve_data_dir, resolve_task

    spec = resolve_task(task, data_dir)
    folder = resolve_data_dir(spec)
    train = read_labeled(spec, folder / spec.train_file, spec.labels)["labels"]
    dev = list(read_labeled(spec, folder / spec.eval_file, spec.labels)["labels"])
    majority = Counter(train).most_common(1)[0][0]
    return compute_metrics([spec.metric, *spec.extra_metrics], [majority] * len(dev), dev)
