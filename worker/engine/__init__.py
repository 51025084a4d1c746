"""The evaluation engine: attacks, an attack ensemble and randomized-smoothing certificates.

``worker.engine.evaluate.evaluate`` is the entry point; ``worker.engine.protocol`` (no torch)
names the stages, metrics and suites for the platform. The README's "Evaluation protocol"
gives every parameter and flag.
"""
