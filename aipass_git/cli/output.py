"""Printing for the CLI: aligned tables for people, canonical JSON for scripts and agents."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from aipass_git.core.text import for_terminal


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, max_width: int = 60) -> str:
    """Plain aligned columns (no box drawing, so output greps and pipes cleanly)."""
    cells = [[_clip(str(c), max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    text = for_terminal(" ".join(text.split()))  # a cell never moves the cursor or reorders text
    return text if len(text) <= width else text[: width - 3] + "..."


def short(commit: str | None) -> str:
    return commit[:10] if commit else "-"
