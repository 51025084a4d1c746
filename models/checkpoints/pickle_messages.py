"""The wording of the pickle audit's refusals: wording only, nothing here decides.

Whether a pickle is refused is decided by ``models.checkpoints.pickle_policy`` (what it may
import and call) and by the bounds the walker (``models.checkpoints.pickle_machine``) enforces;
these functions only say why, for the team, each with a hint on how to save a state_dict.
"""

from models.checkpoints.errors import CheckpointError
from models.checkpoints.limits import MAX_PICKLE_BYTES

HOW_TO_SAVE = (
    "Save only the weights (a state_dict) and pick the architecture from the zoo:\n"
    '    torch.save(model.state_dict(), "model.pth")\n'
    "A custom architecture can be uploaded as a torch.export archive (.pt2) instead."
)

_WORDING_SYSTEM_MODULES = frozenset(
    "os posix nt subprocess sys builtins shutil socket importlib runpy pickle _pickle marshal "
    "ctypes code codeop pty webbrowser operator functools types io _io pathlib tempfile "
    "copyreg".split()
)
"""Wording only: modules whose refused names are never explained as a pickled model."""


def _reads_like_a_pickled_model(target: str) -> bool:
    """Wording only: a class from torch.nn, torchvision or the team's own code (capitalised)."""
    module, _, name = target.rpartition(".")
    if module.split(".")[0] in _WORDING_SYSTEM_MODULES:
        return False
    return module.startswith(("torch.nn.", "torchvision.")) or name[:1].isupper()


def refused_import_message(target: str, count: int) -> str:
    """The message for a pickle that imports ``target`` (and ``count - 1`` more refused names)."""
    more = f" (and {count - 1} more)" if count > 1 else ""
    if _reads_like_a_pickled_model(target):
        return (
            "This checkpoint is a pickled Python object, not a state_dict: loading it would "
            f"import `{target}`{more}, i.e. run code from the file. It looks like a whole "
            "model saved with torch.save(model, ...).\n" + HOW_TO_SAVE
        )
    return (
        f"Refused: loading this checkpoint would import and run `{target}`{more}. A checkpoint "
        "may hold only tensors and plain containers (dict, list, tuple, numbers, strings).\n" + HOW_TO_SAVE
    )


def refused_call() -> CheckpointError:
    """A call whose callable ``may_call`` refuses (one built while loading)."""
    return CheckpointError(
        "Refused: the checkpoint's pickle calls something that is not a plain imported "
        "function, which a file of weights never needs.\n" + HOW_TO_SAVE
    )


def computed_name() -> CheckpointError:
    """STACK_GLOBAL on names that are not strings read from the file."""
    return CheckpointError(
        "Refused: the checkpoint's pickle computes the name of what it imports at load time, "
        "which only code smuggled into a file does.\n" + HOW_TO_SAVE
    )


def extension_registry() -> CheckpointError:
    """EXT1, EXT2 or EXT4: an import through the loading process's copyreg registry."""
    return CheckpointError(
        "Refused: the checkpoint's pickle imports through the copyreg extension registry.\n" + HOW_TO_SAVE
    )


def over_bound(what: str, limit: int) -> CheckpointError:
    """A pickle with more than ``limit`` of ``what`` (opcodes, memo entries, ...)."""
    return CheckpointError(
        f"Refused: the checkpoint's pickle has more than {limit:,} {what}; a file of weights "
        "needs far fewer.\n" + HOW_TO_SAVE
    )


def too_long(size: int) -> CheckpointError:
    """A read of ``size`` bytes past ``MAX_PICKLE_BYTES``: worded as one oversized object if
    ``size`` alone exceeds it, else as a pickle that is too long in all."""
    if size > MAX_PICKLE_BYTES:
        return CheckpointError(
            f"Refused: the checkpoint's pickle declares an object of {size:,} bytes, above "
            f"the limit of {MAX_PICKLE_BYTES:,} (its tensors belong outside the pickle)."
        )
    return CheckpointError(
        f"Refused: the checkpoint's pickle is longer than {MAX_PICKLE_BYTES:,} bytes; a "
        "file of weights keeps its tensors outside the pickle.\n" + HOW_TO_SAVE
    )


def malformed(detail: str) -> CheckpointError:
    """A pickle the walker cannot follow: corrupt, truncated or inconsistent."""
    return CheckpointError(f"The checkpoint's pickle is corrupt or truncated ({detail}).")
