"""The first program of every child: apply the confinement layers, then execute the job.

``python -I -m worker.confine POLICY_JSON ARGV...`` runs as a fresh, single-threaded process
(needed by ``unshare``) started by ``worker.isolation``, imports only the standard library and
``worker.landlock``, and replaces itself with ARGV once confined. Each layer is applied if the
host allows it; the ones that could not be are listed in the report (written to
``report_fd`` when the policy asks for one), never silently. Order matters: namespaces and
mounts need root, the parent-death signal must follow the change of uid (which clears it),
and Landlock needs no_new_privs.
"""

import ctypes
import json
import os
import resource
import signal
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from worker import landlock

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_RLIMITS = {
    "address_space": resource.RLIMIT_AS,
    "file_size": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
    "processes": resource.RLIMIT_NPROC,
}
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


class Layers:
    """What was applied and what could not be, with the reason."""

    def __init__(self) -> None:
        self.active: list[str] = []
        self.missing: dict[str, str] = {}

    def attempt(self, name: str, apply: Any, *args: Any) -> bool:
        try:
            detail = apply(*args)
        except (OSError, ValueError) as error:
            self.missing[name] = str(error)
            return False
        self.active.append(f"{name} ({detail})" if detail else name)
        return True


def _searchable(path: str, uid: int, gid: int) -> bool:
    info = os.stat(path)
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _hidden_steps(paths: Iterable[str | int], uid: int, gid: int) -> dict[str, list[str]]:
    """Directories the uid cannot cross on the way to ``paths`` (descriptors need no path):
    {directory: [children]}."""
    steps: dict[str, list[str]] = {}
    for path in paths:
        if isinstance(path, int) or not os.path.exists(path):
            continue
        parts = Path(os.path.realpath(path)).parts
        for depth in range(1, len(parts)):
            parent = str(Path(*parts[:depth]))
            if not _searchable(parent, uid, gid) and parts[depth] not in steps.get(parent, []):
                steps.setdefault(parent, []).append(parts[depth])
    return steps


def _expose(steps: dict[str, list[str]]) -> str:
    """In this mount namespace, cover each closed directory with an empty tmpfs holding only
    the entries the child needs (bind mounts of the originals): it reaches the interpreter,
    and sees nothing else there."""
    for parent in sorted(steps, key=lambda p: len(Path(p).parts)):
        originals = {name: os.open(Path(parent, name), os.O_PATH) for name in steps[parent]}
        _check(
            _libc.mount(b"tmpfs", parent.encode(), b"tmpfs", 0, b"mode=0755,size=1m"), f"tmpfs on {parent}"
        )
        for name, fd in originals.items():
            target = Path(parent, name)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                target.mkdir()
            else:
                target.touch()
            _check(
                _libc.mount(f"/proc/self/fd/{fd}".encode(), bytes(target), None, _MS_BIND | _MS_REC, None),
                f"bind {target}",
            )
            os.close(fd)
    return ", ".join(sorted(steps)) if steps else ""


def _namespaces(flags: int) -> str:
    _check(_libc.unshare(flags), "unshare")
    if flags & _CLONE_NEWNS:
        _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "private mounts")
    return ""


def _limits(limits: dict[str, int]) -> str:
    applied = []
    for name, value in limits.items():
        if value > 0:
            resource.setrlimit(_RLIMITS[name], (value, value))
            applied.append(name.replace("_", " "))
    return ", ".join(applied)


def _switch_user(uid: int, gid: int) -> str:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    return f"uid {uid}, gid {gid}"


def die_with_parent(parent: int) -> str:
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    if os.getppid() != parent:
        os._exit(1)
    return ""


def _no_new_privs() -> str:
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    return ""


def _landlock(policy: dict[str, Any]) -> str:
    version = landlock.restrict(read=policy["read"], write=policy["write"], devices=policy["devices"])
    scope = "files" + (", TCP" if version >= 4 else "") + (", signals" if version >= 6 else "")
    return f"ABI {version}: {scope}"


def confine(policy: dict[str, Any]) -> Layers:
    """Apply every layer the host allows, in the one order that works."""
    layers = Layers()
    uid, gid = policy["uid"], policy["gid"]
    limits = dict(policy["limits"])
    switch = os.geteuid() == 0 and uid is not None
    if not switch and limits.pop("processes", 0):
        layers.missing["process limit"] = "counted per user: needs the sandbox user"
    layers.attempt("resource limits", _limits, limits)
    if switch:
        if layers.attempt("network namespace", _namespaces, _CLONE_NEWNS | _CLONE_NEWNET):
            hidden = _hidden_steps(policy["read"] + policy["write"], uid, gid)
            if hidden:
                layers.attempt("closed directories bridged", _expose, hidden)
        hidden = _hidden_steps(policy["read"], uid, gid)
        if hidden:
            layers.missing["unprivileged user"] = f"uid {uid} cannot reach {', '.join(hidden)}"
        else:
            layers.attempt("unprivileged user", _switch_user, uid, gid)
    else:
        layers.missing["unprivileged user"] = "not started as root"
        layers.attempt("network namespace", _namespaces, _CLONE_NEWUSER | _CLONE_NEWNET)
    layers.attempt("parent-death signal", die_with_parent, policy["parent"])
    layers.attempt("no_new_privs", _no_new_privs)
    layers.attempt("Landlock", _landlock, policy)
    return layers


def confine_and_report(policy: dict[str, Any]) -> None:
    """``confine``, then write what was applied and what was not to the policy's
    ``report_fd`` when it names one (a fresh interpreter before ``exec``, or a fork)."""
    layers = confine(policy)
    if policy.get("report_fd") is not None:
        with os.fdopen(policy["report_fd"], "w") as report:
            json.dump({"active": layers.active, "missing": layers.missing}, report)


def main(argv: list[str]) -> None:
    confine_and_report(json.loads(argv[0]))
    os.execv(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
