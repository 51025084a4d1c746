"""The child process that touches uploaded files: ``python -m worker.sandbox``.

A worker (or the API's pre-queue probe) starts this module as a fresh interpreter — the
equivalent of the spawn start method, so CUDA initialises cleanly — with an address-space
limit, dying with its parent. A hostile or broken model can take down only this process.

Protocol: JSON lines on stdout. ``{"progress": {...}}`` while running; the last line is
``{"ok": true, ...}`` or ``{"ok": false, "kind": "model"|"platform"|"declined", "message": ...}``.
Exit status 0 on success, 3 for a model's fault, 4 for the platform's, 5 when the evaluation
declined to attack a model whose declared normalisation another one beats (not charged).
"""

import argparse
import ctypes
import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

MODEL_FAULT, PLATFORM_FAULT, DECLINED = 3, 4, 5


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _confine() -> None:
    """Die with the parent and honour ARENA_MEMORY_LIMIT_MB (address space)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(PLATFORM_FAULT)
    limit_mb = int(os.environ.get("ARENA_MEMORY_LIMIT_MB", "0") or 0)
    if limit_mb > 0:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"


def _floats(raw: str | None) -> list[float] | None:
    return [float(x) for x in raw.split(",")] if raw else None


def _probe(args: argparse.Namespace) -> int:
    from models.errors import CheckpointError
    from models.loading import load_model, probe_model

    try:
        loaded = load_model(Path(args.checkpoint), arch=args.arch, mean=_floats(args.mean),
                            std=_floats(args.std))
        probe_model(loaded)
    except CheckpointError as error:
        _emit({"ok": False, "kind": "model", "message": str(error)})
        return MODEL_FAULT
    except MemoryError:
        _emit({"ok": False, "kind": "model", "message": "Loading the model ran out of memory."})
        return MODEL_FAULT
    except Exception as error:  # noqa: BLE001 - any failure of the team's model is reported
        _emit({"ok": False, "kind": "model", "message": f"The model failed to run: {error}"})
        return MODEL_FAULT
    notes = "; ".join(loaded.notes)
    _emit({"ok": True, "arch": loaded.arch, "message": notes})
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from models.errors import CheckpointError
    from models.loading import load_model
    from worker.data import EvalSetError
    from worker.evaluation import evaluate_loaded
    from worker.normalisation import NormalisationRejected

    try:
        loaded = load_model(Path(args.checkpoint), arch=args.arch, mean=_floats(args.mean),
                            std=_floats(args.std))
    except CheckpointError as error:
        _emit({"ok": False, "kind": "model", "message": str(error)})
        return MODEL_FAULT

    def progress(stage: str, done: int, total: int) -> None:
        _emit({"progress": {"stage": stage, "done": done, "total": total}})

    try:
        results = evaluate_loaded(
            loaded,
            eval_set=Path(args.eval_set),
            suite=args.suite,
            sigma=float(args.sigma) if args.sigma else None,
            limit=args.limit,
            device=args.device,
            progress=progress,
            normalisation=args.normalisation,
        )
    except NormalisationRejected as error:
        _emit({"ok": False, "kind": "declined", "message": str(error)})
        return DECLINED
    except EvalSetError as error:
        _emit({"ok": False, "kind": "platform", "message": f"Evaluation set problem: {error}"})
        return PLATFORM_FAULT
    except MemoryError:
        _emit({"ok": False, "kind": "model",
               "message": "The evaluation ran out of memory (the model needs more than the "
                          "platform's per-evaluation memory limit)."})
        return MODEL_FAULT
    except Exception as error:  # noqa: BLE001 - the model's code raised: report it to the team
        last = traceback.extract_tb(error.__traceback__)[-1:]
        where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        _emit({"ok": False, "kind": "model",
               "message": f"The model failed during evaluation: {type(error).__name__}: "
                          f"{error}{where}"})
        return MODEL_FAULT
    Path(args.result).write_text(json.dumps(results))
    _emit({"ok": True})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("probe", "evaluate"):
        sub = commands.add_parser(name)
        sub.add_argument("checkpoint")
        sub.add_argument("--arch", default="auto")
        sub.add_argument("--mean")
        sub.add_argument("--std")
        if name == "evaluate":
            sub.add_argument("--eval-set", required=True)
            sub.add_argument("--suite", required=True)
            sub.add_argument("--sigma")
            sub.add_argument("--limit", type=int)
            sub.add_argument("--device", default="auto")
            sub.add_argument("--normalisation", default="auto", choices=("auto", "as-declared"))
            sub.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    _confine()
    return _probe(args) if args.command == "probe" else _evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
