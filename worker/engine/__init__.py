"""The evaluation engine: attacks, an attack ensemble and randomized-smoothing certificates.

``worker.engine.evaluate.evaluate`` is the entry point; ``worker.engine.protocol`` (no torch)
names the stages, metrics, radii and suites for the platform, the one engine module it imports.
The README's "Evaluation protocol" gives every parameter and flag.

Reading order, one file per idea:

1. ``suites``: the protocols (FGSM, PGD, draws, smoothing, AutoAttack, checks), every
   parameter in one place; ``protocol``: the stage order, metric names, radii and the one
   Clopper-Pearson interval, derived from them. Both torch-free.
2. ``evaluate``: the stages in order (natural, fgsm, pgd_linf, pgd_l2, smoothing,
   autoattack), each reseeded from the seed; read it as the table of contents.

The pieces every attack uses:

3. ``balls``: the ℓ∞ and ℓ2 ε-balls: steps, projections, random points.
4. ``losses``: cross-entropy, the margin loss and targeted margins.
5. ``classifier``: the network as attacks see it: logits, EOT gradients, per-draw accuracy.
6. ``outcome``: per image, the most damaging point an attack tried.
7. ``diagnosis``: the probes before attacking (random in eval mode? probabilities?
   channels-last?).

The attacks, then the worst case over them:

8. ``fgsm``: FGSM, one ℓ∞ step.
9. ``targets``: the nearest wrong classes for targeted restarts, from the clean gradients
   FGSM uses too.
10. ``pgd``: PGD in ℓ∞ or ℓ2, optionally guided by a surrogate.
11. ``noise``: random points on the ball's surface, the sanity check of gradient attacks.
12. ``ensemble``: one threat model's robust accuracy, image by image the worst over PGD with
    cross-entropy and margin, targeted restarts, noise and the surrogate.
13. ``flags``: the warnings beside the numbers: how the model was treated, gradient masking.
14. ``statistics``: the intervals of every accuracy (``protocol``'s Clopper-Pearson).

Beside the attacks:

15. ``smoothing``: randomized smoothing's CERTIFY and PREDICT (Cohen et al. 2019);
    ``certification``: certified accuracy over a subset of the images with it.
16. ``autoattack``: standard AutoAttack through torchattacks.
17. ``normalisation``: which input normalisation a network was trained with, by McNemar
    tests on natural accuracy (run by ``worker.normalisation`` before ``evaluate``).
18. ``cost``: the passes a suite costs, for the server's wait estimates; torch-free.
19. ``memory``: keeping freed host memory on the CPU (speed only, numbers unchanged).
"""
