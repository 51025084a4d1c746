"""The evaluation engine: attacks, an attack ensemble and randomized-smoothing certificates.

``worker.engine.evaluate.evaluate`` is the entry point; ``worker.engine.suites`` (no torch)
names the protocols. The README's "Evaluation protocol" gives every parameter and flag.
"""
