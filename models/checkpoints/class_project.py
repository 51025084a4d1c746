"""The class's own submission format: a folder whose ``model.py`` defines ``Net`` with
``load_for_testing(project_dir)``.

This imports and runs the team's code, exactly as the class's test script did, so it is for
``arena evaluate`` on the team's own machine only; the server never calls it.
"""

import hashlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from models.checkpoints.errors import CheckpointError


def import_project_net(folder: Path) -> nn.Module:
    """Import ``folder/model.py``, build ``Net()`` and call ``load_for_testing(project_dir=...)``.

    The folder is on ``sys.path`` only while its code runs (for its own helper modules). Any
    failure of the team's code becomes a CheckpointError naming the error.
    """
    folder = Path(folder).resolve()
    source = folder / "model.py"
    if not source.is_file():
        raise CheckpointError(f"{folder} is not a class project: it has no model.py.")
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"arena_project_{digest}", source)
    if spec is None or spec.loader is None:
        raise CheckpointError(f"Cannot import {source}.")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
        net_class = getattr(module, "Net", None)
        if net_class is None:
            raise CheckpointError(f"{source} defines no class Net.")
        net = net_class()
        if not callable(getattr(net, "load_for_testing", None)):
            raise CheckpointError(f"{source}: Net has no load_for_testing(project_dir) method.")
        net.load_for_testing(project_dir=str(folder))
    except CheckpointError:
        raise
    except Exception as error:  # the team's code may raise anything
        raise CheckpointError(f"The project's model.py failed: {type(error).__name__}: {error}") from error
    finally:
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
    if not isinstance(net, nn.Module):
        raise CheckpointError(f"{source}: Net is not a torch.nn.Module.")
    return net
