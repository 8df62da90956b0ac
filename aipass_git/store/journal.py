"""Write-ahead records for writes that take more than one step, so that a crash between
the steps is finished (or undone) by the next process instead of by a person.

Before its first step, a writer records what it is about to do in
`<git common dir>/aipass/journal/<kind>-<pid>-<random>.json` and holds an OS lock on
the record until it is done, then deletes it. A record whose lock anyone can take
belongs to a writer that died: `orphans` hands it, locked, to the code that knows how
to finish that kind of write. Each kind's writer owns its recovery; the journal only
keeps the records.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from aipass_git.core.canonical import encode, write_atomic
from aipass_git.core.repo import Repo


@dataclass
class Entry:
    path: Path
    doc: dict[str, Any]
    _lock: Any = field(default=None, repr=False)

    def update(self, **changes: Any) -> None:
        """Record the next phase of the write (atomically: a crash leaves one or the other)."""
        self.doc.update(changes)
        write_atomic(self.path, encode(self.doc))

    def release(self) -> None:
        """Let go of the record without finishing it (someone else will)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        """The write is complete, or was finished by recovery: the record goes."""
        for path in (self.path, self._lock_path(self.path)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        if self._lock is not None:
            self._lock.release()

    @staticmethod
    def _lock_path(path: Path) -> Path:
        return path.with_suffix(".lock")


class Journal:
    def __init__(self, repo: Repo) -> None:
        self.folder = repo.runtime_dir / "journal"

    def has_records(self) -> bool:
        """Cheap: one directory read, for paths that check before every write."""
        try:
            return any(name.endswith(".json") for name in os.listdir(self.folder))
        except FileNotFoundError:
            return False

    @contextmanager
    def record(self, kind: str, doc: dict[str, Any]) -> Iterator[Entry]:
        """Hold a record of KIND while the block runs; it is deleted when the block ends
        normally and left for recovery when the process dies (or the block raises)."""
        from filelock import FileLock  # deferred: ~40 ms cold; `inbox` and `status` read through the store and never lock

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{kind}-{os.getpid()}-{os.urandom(4).hex()}.json"
        lock = FileLock(str(Entry._lock_path(path)))
        lock.acquire(timeout=0)
        entry = Entry(path, {"kind": kind, "pid": os.getpid(), **doc}, lock)
        try:
            write_atomic(path, encode(entry.doc))
        except BaseException:
            lock.release()
            raise
        try:
            yield entry
        except BaseException:
            lock.release()  # left in place: the next process finishes or undoes it
            raise
        entry.close()

    def orphans(self, kind: str) -> Iterator[Entry]:
        """Records of KIND whose writer died, each locked while the caller handles it; the
        caller closes the entry once the write is finished or undone."""
        from filelock import FileLock, Timeout  # deferred: ~40 ms cold; `inbox` and `status` read through the store and never lock

        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return
        for name in names:
            if not (name.startswith(f"{kind}-") and name.endswith(".json")):
                continue
            path = self.folder / name
            lock = FileLock(str(Entry._lock_path(path)))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # its writer is alive, or another process is finishing it
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                lock.release()  # finished meanwhile; its lock file was made again by us
                try:
                    Entry._lock_path(path).unlink()
                except FileNotFoundError:
                    pass
                continue
            except ValueError:
                doc = {}  # cut by a crash: write_atomic makes this unlikely, recovery copes
            yield Entry(path, doc, lock)

    def all_records(self) -> list[Path]:
        """Every record on disk (for `doctor`)."""
        try:
            return sorted(self.folder.glob("*.json"))
        except OSError:
            return []
