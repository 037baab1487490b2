"""What the benchmark commands share, so that each command stays a short script.

- :mod:`~benchmarks.harness.phases`: errors, the time limit, exit codes (0, 1, 3, 130, 143), progress lines.
- :mod:`~benchmarks.harness.services`: ``autopeft serve`` and ``autopeft worker`` processes that end with
  the command (SIGTERM, then SIGKILL; also when the command itself is killed), GPU sampling.
- :mod:`~benchmarks.harness.studies`: batches of studies through the service, resumed and recorded.
- :mod:`~benchmarks.harness.records`: JSON records, the machine and versions, publishing and restoring
  finished study records (a fresh checkout resumes from them).
- :mod:`~benchmarks.harness.analysis`: pure figures over study records (means, rows, dominance).
- :mod:`~benchmarks.harness.reference`: the reference PEFT methods, their learning rates, the majority floor.
- :mod:`~benchmarks.harness.report`: pages from the templates in ``benchmarks/templates``, measured sections.
"""
