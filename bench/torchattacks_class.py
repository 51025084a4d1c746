"""The peer of ``arena evaluate`` for ``bench/end_to_end.py``: torchattacks at the class suite's budgets.

    .venv/bin/python bench/torchattacks_class.py PROJECT_FOLDER EVAL_SET.npz [--limit 256]

A plain script as a team would write it: import the project's ``model.py``, build ``Net`` and
call ``load_for_testing``, read the evaluation set, then run torchattacks' FGSM (ε 8/255),
PGD ℓ∞ (ε 8/255, step 2/255, 20 steps) and PGDL2 (ε 0.5, step 0.1, 20 steps), random
start, in batches of 256, and print natural and robust accuracies as JSON. Each attack is
seeded as the suite seeds that stage (seed 0), so both sides draw their random starts from
the same generator state.
"""

import argparse
import importlib.util
import json
import sys

import numpy as np
import torch
import torchattacks

BATCH = 256
SEEDS = {"fgsm": 2, "pgd_linf": 3, "pgd_l2": 4}  # the suite's stage seeds for seed 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    parser.add_argument("eval_set")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("project_model", f"{args.project}/model.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, args.project)
    spec.loader.exec_module(module)
    model = module.Net()
    model.load_for_testing(project_dir=args.project)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with np.load(args.eval_set) as archive:
        pixels, labels = archive["images"][: args.limit], archive["labels"][: args.limit]
    images = torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()).float().div_(255)
    labels = torch.from_numpy(labels.astype(np.int64))
    attacks = {
        "fgsm": torchattacks.FGSM(model, eps=8 / 255),
        "pgd_linf": torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True),
        "pgd_l2": torchattacks.PGDL2(model, eps=0.5, alpha=0.1, steps=20, random_start=True),
    }
    with torch.no_grad():
        clean = torch.cat(
            [model(x).argmax(1) == y for x, y in zip(images.split(BATCH), labels.split(BATCH), strict=True)]
        )
    out = {"natural": float(clean.float().mean())}
    for name, attack in attacks.items():
        torch.manual_seed(SEEDS[name])
        correct = []
        for x, y in zip(images.split(BATCH), labels.split(BATCH), strict=True):
            adversarial = attack(x, y)
            with torch.no_grad():
                correct.append(model(adversarial).argmax(1) == y)
        out[name] = float((torch.cat(correct) & clean).float().mean())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
