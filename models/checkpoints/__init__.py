"""The intake of checkpoints: static inspection, the pickle and ``.pt2`` audits and their bounds,
and loading a file that passed them into a zoo network."""
