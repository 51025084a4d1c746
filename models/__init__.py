"""The architecture zoo and the intake of checkpoints.

``architectures``: the networks (``catalog``, the zoo as data, needs only the standard library;
``registry`` builds them). ``checkpoints``: static inspection and audits of an upload (standard
library only) and ``loading``, which turns a file that passed them into a model on [0, 1] pixels.
"""
