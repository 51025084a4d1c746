"""The architecture zoo and the intake of checkpoints.

``architectures``: the networks (``catalog``, the zoo as data, needs only the standard library;
``registry`` builds them). ``checkpoints``: static inspection and audits of an upload (standard
library only) and ``loading``, which turns a file that passed them into a model on [0, 1] pixels.

Reading order of ``checkpoints``, the security code first:

1. ``inspection``: which format an upload is, and which audit it goes through.
2. ``limits``: the bounds every audit enforces; ``archives``: zip files opened defensively.
3. ``pickle_audit``, then ``pickle_policy`` (what a pickle may import and call),
   ``pickle_machine`` (the opcode walk) and ``pickle_messages`` (wording only).
4. ``export_audit`` (a .pt2's layout), ``export_graph`` (its program) with ``operators``
   (the operators it may call), and ``export_json`` (bounded JSON reading).
5. ``loading`` (with ``state_dicts`` and ``exported``): a file that passed, into a network of
   ``architectures``; ``class_project`` runs a team's own code, for the local CLI only.
"""
