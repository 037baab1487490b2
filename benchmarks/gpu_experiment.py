"""Issue 9, "A real search on a GPU": the whole experiment in one command.

    # the real run (a CUDA GPU; about 2-4 hours on one H100-class GPU, resumable)
    python -m benchmarks.gpu_experiment --device cuda --out runs/gpu
    # a CPU dry run of the pipeline on the tiny test fixtures (minutes; meaningless numbers)
    python -m benchmarks.gpu_experiment --dry-run --out /tmp/gpu_dry
    # issue 14's CPU profile: SST-2 searches at a 2-core budget (about 100 min; resumable)
    python -m benchmarks.gpu_experiment --profile cpu --out runs/cpu --time-limit 120 \
        --searches sst2-autopeft-gp sst2-autopeft-sobol

The CPU profile (``--profile cpu``) runs the same phases with the budget of ``DEFAULTS["cpu"]``
(200 steps of batch 16, max length 64, two workers of one thread): baselines on SST-2, the gp
search and its sobol control side by side, every search's front retrained on dev; its report
is the "Results on CPU" section of docs/results.md, with plots and ``summary.json`` in
benchmarks/results/cpu.

It uses the service as a user would: ``autopeft serve`` on a SQLite file in ``--out``,
studies created with ``POST /api/v1/studies``, ``autopeft worker`` processes sharing the
GPU, results read back from ``/trials`` and ``/pareto``. Phases (``--phases`` runs a subset):

- ``baselines``: ``python -m benchmarks.baselines`` on RTE, MRPC and SST-2, 8 methods, every seed
  (one process per task, side by side on the GPU).
- ``studies``: RTE searches, one after another, each with all workers: the ``autopeft``
  space with ``gp``, the ``full`` space with ``gp``, and the ``autopeft`` space with
  ``sobol`` (same budget and seed, to compare hypervolume over trials). The objective is
  the metric on the seeded held-out slice of train; GPU utilisation is sampled meanwhile.
- ``retrain``: the Pareto configurations of both ``gp`` studies, trained again with every
  seed and scored on dev (a study per seed whose trials are those configurations).
- ``transfer``: the front points closest (in log10 param_fraction) to 0.1% and 1% trained
  parameters, unchanged, on MRPC and SST-2, every seed, scored on dev.
- ``throughput``: training examples/s of each baseline method (and the transferred
  configurations) alone on the device, full fine-tuning among them.
- ``report``: PNG plots (:mod:`benchmarks.plots`) and the report (:mod:`benchmarks.experiment.report`),
  ``docs/results.md`` for a real run; checks of the issue's targets are printed, not asserted.

Every phase saves JSON under ``--out``; a phase whose JSON exists is skipped (``--force``
runs it again), and an interrupted study is resumed from the server's database, so
running the same command again continues where it stopped. The report refuses to
present numbers from ``--dry-run`` or a CPU device as results: it writes a page that
says the experiment has not run on a GPU, with the dry run labelled as such.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.experiment.phases import (
    phase_baselines,
    phase_retrain,
    phase_studies,
    phase_throughput,
    phase_transfer,
    start_meta,
)
from benchmarks.experiment.plan import make_plan, parse_args
from benchmarks.experiment.report import phase_report
from benchmarks.harness.phases import exit_code, say
from benchmarks.harness.records import record_phase
from benchmarks.harness.services import Service


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda deadline: run_phases(args, deadline), args.time_limit)


def run_phases(args: argparse.Namespace, deadline: float | None) -> None:
    """The phases ``args`` names, in order (finished ones are skipped unless ``--force``)."""
    plan = make_plan(args)
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    meta = start_meta(out, plan)
    dry = "DRY RUN (meaningless numbers): " if plan["dry_run"] else ""
    say(f"{dry}device {meta['device_name']}, out {out}, phases {' '.join(args.phases)}")
    svc: Service | None = None
    try:
        for phase in args.phases:
            marker = out / ("studies.json" if phase == "studies" else f"{phase}.json")
            # the baselines phase always looks: it skips the units it has (a later phase may need more tasks)
            if phase not in ("report", "baselines") and marker.exists() and not args.force:
                say(f"{phase}: already done ({marker}); --force runs it again")
                continue
            say(f"== {phase} ==")
            if phase in ("studies", "retrain", "transfer") and svc is None:
                svc = Service(out).__enter__()
            if phase in ("throughput", "report") and svc is not None:
                svc.__exit__()  # the device to itself, and the database closed
                svc = None
            started = time.monotonic()
            finished = False
            try:
                if phase == "baselines":
                    phase_baselines(plan, out, args.force, deadline)
                elif phase == "studies":
                    phase_studies(plan, out, svc, args.force, deadline)
                elif phase == "retrain":
                    phase_retrain(plan, out, svc, args.force, deadline)
                elif phase == "transfer":
                    phase_transfer(plan, out, svc, args.force, deadline)
                elif phase == "throughput":
                    phase_throughput(plan, out, deadline)
                elif phase == "report":
                    record_phase(out / "meta.json", phase, time.monotonic() - started, True)
                    phase_report(plan, out, args.doc, args.publish)
                    continue
                finished = True
            finally:
                record_phase(out / "meta.json", phase, time.monotonic() - started, finished)
    finally:
        if svc is not None:
            svc.__exit__()


if __name__ == "__main__":
    sys.exit(main())
