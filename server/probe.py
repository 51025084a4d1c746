"""The pre-queue check of an upload, run in a separate, resource-limited process.

The API process never unpickles an upload: it runs ``python -m worker.sandbox probe`` and
reads one JSON line back, so a broken model is refused in seconds with its reason.
"""

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from server.config import Settings

# At most two probes at once: each is a Python process with torch loaded.
_SLOTS = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str
    arch: str | None = None


def probe_checkpoint(
    path: Path,
    *,
    arch: str,
    mean: list[float] | None,
    std: list[float] | None,
    settings: Settings,
) -> ProbeResult:
    command = [sys.executable, "-m", "worker.sandbox", "probe", str(path), "--arch", arch]
    if mean is not None:
        command += ["--mean", ",".join(map(str, mean))]
    if std is not None:
        command += ["--std", ",".join(map(str, std))]
    with _SLOTS:
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=settings.probe_timeout,
                env=_child_env(settings),
            )
        except subprocess.TimeoutExpired:
            return ProbeResult(
                False,
                f"The model did not load and answer within {settings.probe_timeout:g} s.",
            )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("{"):
            answer = json.loads(line)
            return ProbeResult(bool(answer["ok"]), answer.get("message", ""), answer.get("arch"))
    return ProbeResult(
        False, "The model crashed the loading process (out of memory or a fatal error)."
    )


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["ARENA_MEMORY_LIMIT_MB"] = str(settings.probe_memory_limit_mb)
    env["CUDA_VISIBLE_DEVICES"] = ""  # the check runs on the CPU
    return env
