"""The package layout is the data flow; these imports would blur it.

upload → ``server.api`` → ``server.state`` (row, queue) → ``worker`` → ``worker.engine`` → result in
``server.state`` → ``server.api`` / ``server.web``. Checked on the source (every import, top
level or inside a function), so a shortcut cannot hide in a lazy import.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_of(package: str) -> dict[str, set[str]]:
    """Every module each file of ``package`` imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        if "migrations/versions" in path.as_posix():
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[path.relative_to(ROOT).as_posix()] = names
    return found


def offending(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{file} imports {name}"
        for file, names in imports_of(package).items()
        for name in names
        if name.startswith(forbidden) and not name.startswith(allowed)
    )


# The engine's torch-free protocol is the one part of the worker the state layer may read.
ENGINE_DEFINITIONS = ("worker.engine.protocol",)


@pytest.mark.parametrize(
    ("package", "forbidden", "allowed"),
    [
        # the state: no web layer, no worker runtime, no torch
        (
            "server.state",
            ("server.api", "server.web", "server.cli", "server.main", "server.supervisor", "worker", "torch"),
            ENGINE_DEFINITIONS,
        ),
        # the API and the pages reach workers only through the state's queue
        (
            "server.api",
            ("server.web", "server.cli", "server.main", "worker.runner", "worker.tasks", "worker.celery_app"),
            (),
        ),
        ("server.web", ("server.cli", "server.main", "worker", "torch"), ENGINE_DEFINITIONS),
        # the worker depends on the state alone
        ("worker", ("server.api", "server.web", "server.cli", "server.main", "server.supervisor"), ()),
        # the engine knows nothing of the platform
        ("worker.engine", ("server", "models", "worker"), ("worker.engine",)),
        # the zoo knows nothing of the platform either
        ("models", ("server", "worker"), ()),
    ],
)
def test_layer_imports(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    assert offending(package, forbidden, allowed) == []


def test_the_engine_protocol_does_not_import_torch() -> None:
    """The state layer and the pages import it: torch would cost them seconds and memory
    (and numpy and scipy wait for the first interval computed)."""
    check = (
        "import sys, worker.engine.protocol; "
        "loaded = {'torch', 'numpy', 'scipy'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True)
