"""Benchmarks: the figures of docs/ and the README, measured and never asserted.

Each one is a command run from the repository root as ``python -m benchmarks.NAME`` (see its
docstring): ``gpu_experiment`` (the search against the reference methods, on a GPU or at a CPU
budget), ``warm_start``, ``early_stopping``, ``methods``, ``decoder_llm``, ``baselines``, ``optimizer``,
``server``, ``slow_headers`` and ``param_counts``; ``report`` writes every published page again from the
published records.
What they share lives in :mod:`benchmarks.harness` (the service and its workers, records,
phases, the report's templates); :mod:`benchmarks.experiment` is the results experiment that
``gpu_experiment`` runs, :mod:`benchmarks.analysis` the other benchmarks' figures, and
:mod:`benchmarks.plots` draws the plots.
"""
