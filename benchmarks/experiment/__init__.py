"""The results experiment that ``python -m benchmarks.gpu_experiment`` runs: its plan and profiles
(:mod:`~benchmarks.experiment.plan`), its phases (:mod:`~benchmarks.experiment.phases`), the
figures they add up to (:mod:`~benchmarks.experiment.analysis`) and its report, docs/results.md
(:mod:`~benchmarks.experiment.report`, with the templates ``benchmarks/templates/results_*``).
The other benchmarks on real data (warm start, early stopping) reuse its plan and budget."""
