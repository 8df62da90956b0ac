"""Printing for the CLI: aligned tables for people, canonical JSON for scripts and agents."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterable, Sequence

from aipass_git.core.canonical import dumps
from aipass_git.core.text import for_terminal


def emit_json(doc: Any) -> None:
    try:
        # the same bytes as json.dumps(indent=2, sort_keys=True), without its pure-Python
        # indenting encoder: `status --json` of a thousand agents spent 70 ms in it
        text = dumps(doc)
    except TypeError:  # a key that is not a string: json.dumps turns it into one
        text = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    sys.stdout.write(text)


def styled(stream=None) -> bool:
    """Colour only for a person at a terminal: never piped, with NO_COLOR, or on a dumb one."""
    stream = stream or sys.stdout
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str, stream=None) -> str:
    """TEXT in the ANSI style CODE ("1" bold, "31" red, ...) when STREAM is `styled`."""
    return f"\x1b[{code}m{text}\x1b[0m" if styled(stream) else text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, max_width: int = 60) -> str:
    """Plain aligned columns (no box drawing, so output greps and pipes cleanly); the header
    row is bold on a terminal."""
    cells = [[_clip(str(c), max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = [paint("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "1")]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    text = for_terminal(" ".join(text.split()))  # a cell never moves the cursor or reorders text
    return text if len(text) <= width else text[: width - 3] + "..."


def _draws_on_stderr() -> bool:
    """Bars and spinners are for a person at a terminal: never a pipe or a dumb terminal."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


class _Drawn:
    """What a `with` block draws on standard error while it runs, for a person at a
    terminal only (pipes, scripts and tests see nothing): entered, it gives its `update`,
    or None when there is no terminal. rich is imported only when something is drawn."""

    live = None  # the rich display, started by `_start`

    def __enter__(self):
        if not _draws_on_stderr():
            return None
        from rich.console import Console  # deferred: only a terminal gets a display

        self.live = self._start(Console(stderr=True))
        return self.update

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()


class progress(_Drawn):
    """A progress bar for long work; its update takes `(done, total)` to hand down."""

    def __init__(self, label: str) -> None:
        self.label = label

    def _start(self, console):
        from rich.progress import Progress  # deferred: only a terminal gets a bar

        bar = Progress(console=console, transient=True)
        bar.start()
        self.task = bar.add_task(self.label, total=None)
        return bar

    def update(self, done: int, total: int) -> None:
        self.live.update(self.task, completed=done, total=total)


class spinner(_Drawn):
    """A one-line spinner for a wait; its update replaces the text and redraws at once."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _start(self, console):
        from rich.live import Live  # deferred: only a terminal gets a spinner
        from rich.spinner import Spinner  # deferred: only a terminal gets a spinner

        self.spin = Spinner("dots", text=for_terminal(self.text))
        live = Live(self.spin, console=console, transient=True, refresh_per_second=12.5)
        live.start(refresh=True)
        return live

    def update(self, text: str) -> None:
        text = for_terminal(text)
        if text != self.text:
            self.text = text
            self.spin.update(text=text)
            self.live.refresh()


def short(commit: str | None) -> str:
    return commit[:10] if commit else "-"
