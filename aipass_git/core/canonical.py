"""Canonical JSON and all-or-nothing file writes.

Canonical (UTF-8, sorted keys, 2-space indent, final newline) so that two writers of the
same document produce the same bytes and diffs stay minimal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aipass_git.core import faults, pids


_scalar = json.JSONEncoder(ensure_ascii=False).encode  # the C encoder: no indent, no sorting needed


def dumps(doc: Any) -> str:
    """Exactly `json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True)` plus a newline.

    Built by hand around the C encoder for the leaves: the standard library falls back to
    its pure-Python encoder whenever `indent` is set, which is 5x slower on a message.
    orjson would be 30x faster per call, but a call costs microseconds here while its import
    costs 20-30 ms, and it writes floats in another notation than the documents have.
    """
    out: list[str] = []
    _write(doc, "", out)
    out.append("\n")
    return "".join(out)


def _write(value: Any, pad: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = pad + "  "
        out.append("{")
        first = True
        for key in sorted(value):
            out.append("\n" + inner if first else ",\n" + inner)
            first = False
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON keys are strings, not {type(key).__name__}")
            out.append(_scalar(key))
            out.append(": ")
            _write(value[key], inner, out)
        out.append("\n" + pad + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = pad + "  "
        out.append("[")
        for i, item in enumerate(value):
            out.append("\n" + inner if i == 0 else ",\n" + inner)
            _write(item, inner, out)
        out.append("\n" + pad + "]")
    else:
        out.append(_scalar(value))


def encode(doc: Any) -> bytes:
    return dumps(doc).encode("utf-8")


TEMP_SUFFIX = ".aipass-tmp"


def temp_owner(name: str) -> int | None:
    """The pid that wrote the temporary file NAME (see write_atomic), or None if not one."""
    if not name.endswith(TEMP_SUFFIX):
        return None
    parts = name.split(".")
    return int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None


def write_atomic(path: Path, data: bytes) -> None:
    """Write DATA to PATH so that readers see the old file or the new one, never a part.

    The data goes to `.<name>.<pid>.<random>.aipass-tmp` beside it, is synced, then
    renamed over PATH; a process killed first leaves only that temporary file, which no
    reader opens and the next write of PATH removes once its pid is gone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        faults.point("temp-written")
        os.replace(tmp, path)
        _clear_stale_temps(path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_derived(path: Path, data: bytes) -> bool:
    """Write a derived file (a cache, a shortcut) whole by rename, as write_atomic does but
    without its fsync and fault points: losing one costs a recomputation, and a command
    that only reads must not stop at a write's fault point. False when it cannot be
    written (a read-only repository computes it every time)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def _clear_stale_temps(path: Path) -> None:
    prefix = f".{path.name}."
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(TEMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        owner = temp_owner(name)
        if owner is not None and not pids.alive(owner):
            try:
                os.unlink(path.parent / name)
            except OSError:
                pass
