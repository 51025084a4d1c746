"""Where an evaluation's time goes, stage by stage and attack by attack.

    .venv/bin/python bench/suite.py [--device cpu|cuda] [--suite class] [--images 256]
        [--sigma 0.25] [--project FOLDER | --arch lwta-wrn-34-1]

By default this is the worker's path: the pretrained ResNet-20 checkpoint loaded by
``models.checkpoints.loading.load_model`` and the class split (first 1024 training images) read from an
evaluation-set file, as the sandboxed child does; ``--project`` loads a class-format folder
instead, as ``arena evaluate FOLDER`` does (``bench/.cache/resnet20-project`` holds one, built
by ``bench/end_to_end.py``). The stages:

- start-up: a confined fork of the worker's pre-imported process (``worker.forkserver``)
  running what the child imports, or with ``--child-start fresh`` a fresh interpreter
  importing it (median of 3 runs, measured in a child since this process has them already);
- loading (model) and evaluation set; the normalisation check (natural accuracy of each
  candidate normalisation, ``worker.normalisation``), not with ``--arch``; probes (the
  engine's model diagnosis);
- each stage of the engine, and inside each threat model each attack of the ensemble
  (``pgd_targeted`` includes ranking the target classes);
- writing: the result as JSON to a file.

"outside attacks" sums start-up, loading, evaluation set, normalisation check, probes, the
natural pass and writing. ``--images`` takes the first N images (default: the suite's count).

``--arch`` times a zoo network at its initial weights with its declared surrogate. The images
are then labelled with the network's own predictions (a stochastic network's most frequent of
15), so every image is correct (in most draws) and every attack starts on all of them; how
soon the attacks succeed (and stop early) still depends on the weights, so a trained robust
model, whose images resist all the steps, takes longer per image than this. The class suite's
smoothing (500 images at N = 100 000) is hours on a CPU: pass ``--suite smoke`` with
``--sigma`` to see that stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.class_project import class_split  # noqa: E402
from bench.fixtures import DATA, MEAN, ROOT, STD, add_device, machine, table  # noqa: E402
from worker.engine.ensemble import Ensemble  # noqa: E402
from worker.engine.suites import get_suite  # noqa: E402

CHILD_IMPORTS = (
    "import worker.sandbox; from models.checkpoints.loading import load_model; "
    "from worker.data import load_eval_set; from worker.evaluation import evaluate_loaded"
)


class StageClock:
    """Seconds per stage, from the engine's ``progress(stage, done, total)`` calls."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.stage: str | None = None
        self.since = time.perf_counter()

    def __call__(self, stage: str | None, done: int = 0, total: int = 0) -> None:
        if stage == self.stage:
            return
        _synchronize(self.device)
        now = time.perf_counter()
        key = self.stage or "probes"
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self.since
        self.stage, self.since = stage, now


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_attacks(clock: StageClock) -> dict[str, float]:
    """Wrap ``Ensemble._attacks`` so each attack's time (its runs made, target ranking
    included, the cascade and rescoring) is added to ``seconds["<stage>/<attack>"]``; returns
    that dict."""
    seconds: dict[str, float] = {}
    attacks = Ensemble._attacks

    def timed(self: Ensemble) -> Iterator[Any]:
        generator = attacks(self)
        while True:
            start = time.perf_counter()
            try:
                name, runs = next(generator)
            except StopIteration:
                return
            yield name, runs  # the ensemble runs and rescores this attack before resuming
            _synchronize(clock.device)
            key = f"{clock.stage}/{name}"
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start

    Ensemble._attacks = timed  # type: ignore[method-assign]
    return seconds


class PassCounter:
    """Images through a network's forward pass, with and without a graph kept for gradients:
    a count of the work that does not depend on how busy the machine is."""

    def __init__(self, *modules: torch.nn.Module | None) -> None:
        self.plain = self.graph = self.backward = 0
        for module in modules:
            if module is not None:
                module.register_forward_hook(self._count)
        grad = torch.autograd.grad

        def counted(outputs: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            self.backward += len(inputs[0] if isinstance(inputs, list | tuple) else inputs)
            return grad(outputs, inputs, *args, **kwargs)

        torch.autograd.grad = counted

    def _count(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if torch.is_grad_enabled():
            self.graph += len(args[0])
        else:
            self.plain += len(args[0])


def startup_seconds(child_start: str, runs: int = 3) -> float:
    """Median wall time of a child that imports what the evaluation child imports: a fresh
    interpreter, or a confined fork of a running fork server (which has them already; its
    own start is paid once per worker, and printed)."""
    times = []
    if child_start == "fresh":
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", CHILD_IMPORTS], cwd=ROOT, check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    from worker.forking import Forkserver
    from worker.isolation import Sandbox, passed_env

    start = time.perf_counter()
    server = Forkserver(passed_env())
    server.ready.wait()
    print(f"fork server ready in {time.perf_counter() - start:.2f} s (once per worker)", flush=True)
    try:
        for _ in range(runs):
            start = time.perf_counter()
            with Sandbox(forkserver=server) as box:
                box.start(["-c", CHILD_IMPORTS])
                if box.wait() != 0 or not box.forked:
                    raise RuntimeError(f"the forked child failed: {box.output()}")
            times.append(time.perf_counter() - start)
    finally:
        server.close()
    return statistics.median(times)


def load(args: argparse.Namespace) -> tuple[Any, str, Callable[[torch.Tensor], torch.Tensor] | None]:
    """(LoadedModel-like object, its name, a labeller for --arch or None)."""
    if args.arch:
        from models.architectures.registry import build_model, build_surrogate
        from models.checkpoints.loading import LoadedModel

        torch.manual_seed(0)
        model = build_model(args.arch).eval()
        surrogate = build_surrogate(args.arch, model)
        loaded = LoadedModel(model, None if surrogate is None else surrogate.eval(), args.arch)

        def labeller(images: torch.Tensor) -> torch.Tensor:
            # The most frequent of 15 predictions (a stochastic network's modal class), so
            # that no image starts out wrong by the luck of one draw. Plain tensors: the
            # engine's gradients go through them later.
            with torch.no_grad():
                votes = [
                    torch.cat([model(batch).argmax(1) for batch in images.split(256)]) for _ in range(15)
                ]
            return torch.stack(votes).mode(dim=0).values

        return loaded, f"{args.arch} (initial weights, images labelled by itself)", labeller
    if args.project:
        from models.checkpoints.loading import load_class_project

        return load_class_project(Path(args.project)), f"class project {args.project}", None
    from models.checkpoints.loading import load_model

    path = DATA / "pretrained" / "resnet20-12fca82f.th"
    return load_model(path, arch="resnet20", mean=list(MEAN), std=list(STD)), "ResNet-20 checkpoint", None


def main() -> None:
    """Time one evaluation stage by stage and print the table.

    Long because it is the benchmark read top to bottom: parse, load, settle the
    normalisation, run the engine with its clocks, write, then one table row per stage.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_device(parser)
    parser.add_argument("--suite", default="class", help="class, robustbench or smoke (default class)")
    parser.add_argument("--images", type=int, default=None, help="first N images (default: suite's)")
    parser.add_argument("--sigma", type=float, default=None, help="also certify with smoothing at this σ")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--project", default=None, help="a class-format project folder")
    source.add_argument(
        "--arch", default=None, help="a zoo network at its initial weights, on images labelled by itself"
    )
    parser.add_argument("--no-startup", action="store_true", help="skip timing the child's start")
    parser.add_argument(
        "--child-start",
        choices=("fork", "fresh"),
        default="fork",
        help="how the worker starts the child (ARENA_CHILD_START; default fork)",
    )
    args = parser.parse_args()
    from worker.data import load_eval_set
    from worker.engine.evaluate import evaluate

    device = torch.device(args.device)
    suite = get_suite(args.suite)
    count = args.images or suite.images or 1024
    print(f"machine: {machine(device)}", flush=True)
    rows: list[tuple[str, float]] = []
    if not args.no_startup:
        label = "start-up (a fork of the pre-imported process)"
        if args.child_start == "fresh":
            label = "start-up and imports (fresh interpreter)"
        rows.append((label, startup_seconds(args.child_start)))
    start = time.perf_counter()
    loaded, name, labeller = load(args)
    rows.append(("loading (model)", time.perf_counter() - start))
    start = time.perf_counter()
    images, labels = load_eval_set(class_split(), count)
    if labeller is not None:
        labels = labeller(images)
    rows.append(("evaluation set", time.perf_counter() - start))
    print(
        f"suite {suite.name} v{suite.version}, {name}, {len(images)} images"
        f"{f', σ = {args.sigma}' if args.sigma else ''}\n",
        flush=True,
    )
    if labeller is None:  # the worker's first step; an untrained --arch network has nothing to settle
        from worker.normalisation import settle_normalisation

        start = time.perf_counter()
        loaded, _ = settle_normalisation(loaded, images, labels, suite, device=device)
        _synchronize(device)
        rows.append(("normalisation check", time.perf_counter() - start))
    clock = StageClock(device)
    attacks = time_attacks(clock)
    start = time.perf_counter()
    model = loaded.model.to(device)
    surrogate = None if loaded.surrogate is None else loaded.surrogate.to(device)
    passes = PassCounter(model, surrogate)
    clock.since = time.perf_counter()
    result = evaluate(
        model,
        images,
        labels,
        suite,
        sigma=args.sigma,
        surrogate=surrogate,
        device=device,
        seed=0,
        progress=clock,
    )
    clock(None)
    engine = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "result.json").write_text(json.dumps(result))
    writing = time.perf_counter() - start
    rows += list(clock.seconds.items())
    rows.append(("writing (result JSON)", writing))
    total = sum(seconds for _, seconds in rows)
    fixed = sum(
        seconds
        for stage, seconds in rows
        if stage.split(" ")[0]
        in ("start-up", "loading", "evaluation", "normalisation", "probes", "natural", "writing")
    )
    lines = []
    for stage, seconds in rows:
        metric = result.get(stage, {})
        lines.append([stage, f"{seconds:.2f}", f"{100 * seconds / total:.0f}%", _accuracy(metric)])
        for key, part in attacks.items():
            if key.startswith(f"{stage}/"):
                figure = metric.get("attacks", {}).get(key.split("/", 1)[1])
                lines.append(
                    [
                        f"  {key}",
                        f"{part:.2f}",
                        f"{100 * part / total:.0f}%",
                        "" if figure is None else f"{100 * figure:.2f}%",
                    ]
                )
    lines.append(
        [
            "outside attacks (start-up, loading, set, normalisation, probes, natural, writing)",
            f"{fixed:.2f}",
            f"{100 * fixed / total:.0f}%",
            "",
        ]
    )
    lines.append(["total", f"{total:.2f}", "100%", ""])
    print(table(["stage", "seconds", "share", "accuracy"], lines))
    print(
        f"\nengine only: {engine:.2f} s, {engine / len(images):.3f} s per image; "
        f"forward passes per image: {passes.plain / len(images):.1f} without a graph, "
        f"{passes.graph / len(images):.1f} with one, backward passes per image: "
        f"{passes.backward / len(images):.1f}; model: {json.dumps(result['model'])}"
    )


def _accuracy(metric: dict[str, Any]) -> str:
    accuracy = metric.get("accuracy") if isinstance(metric, dict) else None
    return "" if accuracy is None else f"{100 * accuracy:.2f}%"


if __name__ == "__main__":
    main()
