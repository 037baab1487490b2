"""What a benchmark keeps: JSON records written atomically, the machine and versions they were
measured with, the command that ran, and finished study records published under
benchmarks/results (committed, so that a fresh checkout resumes from them instead of training again)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness.phases import ExperimentError, say

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"


def save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The running command as a user types it: ``python -m benchmarks.NAME ARGS`` for a module."""
    args = list(sys.argv[1:] if argv is None else argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = f"-m {spec.name}" if spec is not None and spec.name else os.path.relpath(sys.argv[0], ROOT)
    return "python " + " ".join([program, *(shlex.quote(a) for a in args)])


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Python and the packages every figure depends on."""
    import datasets
    import torch
    import transformers

    import autopeft

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "autopeft": autopeft.__version__,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: str) -> dict[str, Any]:
    """The machine in detail: platform, CPU, cores, torch threads, load, the GPU of a CUDA device."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def device_description(device: str) -> str:
    """The device's name: the GPU's for CUDA, else ``CPU: <model>``."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ExperimentError(f"--device {device}: torch sees no CUDA device (torch {torch.__version__})")
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU: {cpu_name()}"


def machine_of(device: str) -> dict[str, Any]:
    """The machine a figure was measured on: ``device`` (as :func:`device_description` names it) and ``cpu_count``."""
    return {"device": device_description(device), "cpu_count": os.cpu_count()}


def bench_meta(path: Path, plan: Mapping[str, Any]) -> None:
    """A benchmark's meta file (device, cores, versions, start), written once: a resumed run keeps it."""
    if not path.exists():
        save_json(
            path,
            {
                **machine_of(plan["device"]),
                "versions": versions() | {"botorch": package_version("botorch")},
                "started": now(),
            },
        )


def record_phase(meta_path: Path, phase: str, seconds: float, finished: bool) -> None:
    """Wall time of a phase in a run's meta file, summed over the commands that worked on it (the
    report's: its last run)."""
    meta = load_json(meta_path)
    entry = meta["phases"].setdefault(phase, {"seconds": 0.0})
    if phase == "report":
        entry["seconds"] = seconds
    else:
        entry["seconds"] += seconds
    if finished:
        entry["finished"] = now()
    save_json(meta_path, meta)


def portable_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A study body without what depends on the machine (the data folder's path)."""
    out = dict(body)
    if isinstance(out.get("task"), Mapping):
        out["task"] = {k: v for k, v in out["task"].items() if k != "data_dir"}
    return out


def restore_records(published: Path, out: Path, bodies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Copy into ``out/studies`` the finished study records published under ``published`` (a fresh
    checkout keeps only those) whose study body is the one this run would create, so that
    :func:`benchmarks.harness.studies.run_batch` does not train them again. Returns the keys restored."""
    restored = []
    for key, body in bodies.items():
        src, dst = published / f"{key}.json", out / "studies" / f"{key}.json"
        if dst.exists() or not src.exists():
            continue
        record = load_json(src)
        if portable_body(record.get("body", {})) == portable_body(body):
            save_json(dst, record)
            restored.append(key)
    if restored:
        say(
            f"restored {len(restored)} finished stud{'y' if len(restored) == 1 else 'ies'} from {published}: {restored}"
        )
    return restored


def read_records(folder: Path, keys: Iterable[str]) -> dict[str, Any]:
    """The study records ``folder/<key>.json`` of ``keys`` that exist (a run's ``out/studies``, or a
    published folder of them)."""
    paths = {key: folder / f"{key}.json" for key in keys}
    return {key: load_json(path) for key, path in paths.items() if path.exists()}


def publish_records(published: Path, out: Path, keys: Sequence[str]) -> None:
    """Copy the finished study records of ``keys`` from ``out/studies`` to ``published`` (committed:
    a later checkout resumes from them, and they keep every trial's curve for replays)."""
    for key in keys:
        src = out / "studies" / f"{key}.json"
        if src.exists():
            save_json(published / f"{key}.json", load_json(src))
