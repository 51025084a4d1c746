"""The evaluation engine: attacks, an attack ensemble and randomized-smoothing certificates.

``worker.engine.evaluate.evaluate`` is the entry point; ``worker.engine.suites`` (no torch)
names the protocols. See PROTOCOL.md for every parameter and flag.
"""
