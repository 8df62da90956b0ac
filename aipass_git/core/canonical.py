"""Canonical JSON and all-or-nothing file writes.

Canonical (UTF-8, sorted keys, 2-space indent, final newline) so that two writers of the
same document produce the same bytes and diffs stay minimal.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def encode(doc: Any) -> bytes:
    return dumps(doc).encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write DATA to PATH so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
