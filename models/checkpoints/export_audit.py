"""Static audit of a ``torch.export`` archive (.pt2) before ``torch.export.load`` sees it.

``torch.export.load`` is not safe on untrusted files as it stands: it unpickles weights and
constants (``torch.load(weights_only=False)``, ``pickle.loads``), loads AOTInductor shared
libraries, evaluates every ``expr_str`` of the graph with ``sympy.sympify`` (an ``eval``),
compiles ``guards_code`` into Python, and resolves node targets by ``getattr`` from ``torch``
(``torch.os.system`` resolves). This audit accepts only what a plain exported network needs:

- entries of the known layout, weights and tensor constants as raw bytes (no pickled payloads,
  no custom or opaque objects, no compiled code), sample inputs that pass the pickle audit;
- one program, ``models/model.json``, that calls only the pure tensor operators listed in
  ``models.checkpoints.operators`` (no files, storage, printing, devices other than CPU/CUDA, control
  flow or other namespaces; in-place operators only on tensors the graph computed itself;
  string arguments only as enumerated modes), whose symbolic expressions use only a tiny
  arithmetic grammar, with no guards code and no custom-object values;
- one image input ``(N, 3, 32, 32)`` whose batch dimension is dynamic.

Standard library only; nothing is unpickled, evaluated or imported. Every JSON member is read
within the bounds of ``models.checkpoints.limits``, and a member of the wrong shape (a list where an object
belongs, a number where a size object belongs, nesting too deep) is refused saying where.

This module checks the archive's layout and payloads; ``models.checkpoints.export_graph``
checks the program, and ``models.checkpoints.export_json`` reads the JSON members and words
the refusals.
"""

import re
import zipfile
from io import BytesIO

from models.checkpoints.archives import audit_torch_zip, open_checked_zip, read_entry
from models.checkpoints.errors import CheckpointError
from models.checkpoints.export_graph import audit_program
from models.checkpoints.export_json import containers, load_json, refuse
from models.checkpoints.limits import MAX_CONFIG_BYTES, MAX_JSON_BYTES, MAX_PICKLE_BYTES, Budget

_FIXED_ENTRIES = frozenset(
    {
        "archive_format",
        "archive_version",
        "byteorder",
        "version",
        ".data/version",
        ".data/serialization_id",
        ".format_version",
        ".storage_alignment",
    }
)
_ENTRY_PATTERNS = (
    re.compile(r"models/model\.json"),
    re.compile(r"data/weights/model_weights_config\.json"),
    re.compile(r"data/weights/weight_\d+"),
    re.compile(r"data/constants/model_constants_config\.json"),
    re.compile(r"data/constants/tensor_\d+"),
    re.compile(r"data/sample_inputs/model\.pt"),
    re.compile(r"extra/[A-Za-z0-9_.\-]+"),
)


def audit_export_archive(archive: zipfile.ZipFile, budget: Budget | None = None) -> None:
    """Raise CheckpointError unless ``archive`` is a plain, safe torch.export program."""
    budget = budget or Budget()
    names = archive.namelist()
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names):
        raise refuse("expected every entry under one top folder, as torch.export.save writes.")
    root = roots.pop() + "/"
    entries = {name[len(root) :] for name in names if not name.endswith("/")}
    for entry in sorted(entries):
        if entry in _FIXED_ENTRIES or any(p.fullmatch(entry) for p in _ENTRY_PATTERNS):
            continue
        raise refuse(f"it contains {entry!r}, {_describe_entry(entry)}")
    if read_entry(archive, root + "archive_format", 64).strip() != b"pt2":
        raise refuse("its archive_format entry does not say pt2.")
    if "models/model.json" not in entries:
        raise refuse("it holds no program named 'model' (models/model.json).")
    for config in (
        "data/weights/model_weights_config.json",
        "data/constants/model_constants_config.json",
    ):
        if config in entries:
            _audit_payload_config(archive, root, config, entries, budget)
    if "data/sample_inputs/model.pt" in entries:
        sample = read_entry(archive, root + "data/sample_inputs/model.pt", MAX_PICKLE_BYTES)
        if sample:
            try:
                audit_torch_zip(open_checked_zip(BytesIO(sample)), budget)
            except CheckpointError as error:
                reason = str(error).splitlines()[0]
                raise refuse(f"its sample inputs are not plain tensors. {reason}") from None
    program = load_json(archive, root + "models/model.json", MAX_JSON_BYTES)
    audit_program(program, budget)


def _describe_entry(entry: str) -> str:
    """Wording only: why an entry outside the known layout is refused (it is, whatever this says)."""
    if "custom_obj_" in entry or "opaque_obj_" in entry:
        return "a pickled custom or opaque object; only tensors are accepted."
    if entry.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")):
        return "compiled code (AOTInductor/ExecuTorch), which would run as it loads."
    if entry.endswith(".pt") or entry.endswith(".pkl"):
        return "a pickled payload (an old torch.export layout, or hand-made)."
    return "which torch.export.save does not write for a plain network."


def _audit_payload_config(
    archive: zipfile.ZipFile, root: str, config: str, entries: set[str], budget: Budget
) -> None:
    """Every weight or constant listed in ``config`` is a raw tensor file the archive holds,
    never a pickle."""
    folder, _, _ = config.rpartition("/")
    payload = load_json(archive, root + config, MAX_CONFIG_BYTES)
    for _ in containers(payload, config, budget):  # only the nesting and time bounds
        pass
    items = payload.get("config") if isinstance(payload, dict) else None
    if not isinstance(items, dict):
        raise refuse(f"{config} is not a payload configuration.")
    prefix = "weight_" if folder.endswith("weights") else "tensor_"
    for fqn, meta in items.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise refuse(
                f"{fqn!r} is stored as a pickle (a tensor subclass or an object); export plain tensors only."
            )
        path = meta.get("path_name")
        if not (isinstance(path, str) and re.fullmatch(prefix + r"\d+", path)):
            raise refuse(f"{fqn!r} points at {path!r}, which is not a raw tensor file.")
        if f"{folder}/{path}" not in entries:
            raise refuse(f"{fqn!r} points at {path!r}, which the archive lacks.")
