"""The pure figures of the benchmarks on real data: what their reports compute from study records,
tested without training (the results experiment keeps its own in :mod:`benchmarks.experiment.analysis`)."""
