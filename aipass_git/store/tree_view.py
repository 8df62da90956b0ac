"""The materialised state of an event ref, read lazily and edited in memory.

A `TreeView` starts at a commit's tree. Reads load only the trees on the path asked for;
writes replace entries in memory and mark the path up to the root as changed, so that
`flush` rewrites O(depth) trees, never the untouched ones. This is why the stored layouts
fan out (`messages/a/b/<id>.json`): an append touches a handful of small trees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aipass_git.store.objects import BLOB_MODE, TREE_MODE

if TYPE_CHECKING:
    from aipass_git.store.events import EventStore


class _Dir:
    __slots__ = ("entries", "children", "dirty")

    def __init__(self, entries: dict[str, tuple[str, str]]) -> None:
        self.entries = entries  # name -> (mode, oid); oid is "" for a blob not yet written
        self.children: dict[str, _Dir] = {}
        self.dirty = False


class TreeView:
    def __init__(self, store: "EventStore", tree: str | None) -> None:
        self._store = store
        self._root = _Dir(dict(store.tree_entries(tree)) if tree else {})
        self._pending: dict[str, bytes] = {}  # path -> data of blobs written but not flushed
        self._changes: list[tuple[str, bytes | None]] = []

    # -- reading ------------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        if path in self._pending:
            return self._pending[path]
        folder, name = self._locate(path, create=False)
        if folder is None or name not in folder.entries:
            return None
        mode, oid = folder.entries[name]
        if mode == TREE_MODE:
            return None
        return self._store.blob(oid)

    def list(self, path: str = "") -> dict[str, tuple[str, str]]:
        """Entries of the folder PATH ("" is the root); empty when it does not exist."""
        folder = self._dir(path, create=False)
        return dict(folder.entries) if folder is not None else {}

    # -- writing ------------------------------------------------------------------------

    def write(self, path: str, data: bytes) -> None:
        folder, name = self._locate(path, create=True)
        folder.entries[name] = (BLOB_MODE, "")
        self._pending[path] = data
        self._changes.append((path, data))

    def link(self, path: str, mode: str, oid: str) -> None:
        """Point PATH at an object that already exists (a blob or tree of another state
        being merged in): nothing is read or written again."""
        folder, name = self._locate(path, create=True)
        folder.entries[name] = (mode, oid)
        folder.children.pop(name, None)
        self._pending.pop(path, None)

    def delete(self, path: str) -> None:
        folder, name = self._locate(path, create=False)
        if folder is not None and name in folder.entries:
            del folder.entries[name]
            folder.dirty = True
            self._mark_dirty(path)
        self._pending.pop(path, None)
        self._changes.append((path, None))

    def take_changes(self) -> list[tuple[str, bytes | None]]:
        """The writes and deletes since the last call, in order (used by bulk writers)."""
        changes, self._changes = self._changes, []
        return changes

    def flush(self) -> str:
        """Write pending blobs and every changed tree; return the new root tree id."""
        writer = self._store.writer
        for path, data in self._pending.items():
            folder, name = self._locate(path, create=True)
            folder.entries[name] = (BLOB_MODE, writer.blob(data))
        self._pending.clear()
        self._changes.clear()
        return self._flush_dir(self._root)

    def _flush_dir(self, folder: _Dir) -> str:
        for name, child in folder.children.items():
            if child.dirty:
                if child.entries or child.children:
                    folder.entries[name] = (TREE_MODE, self._flush_dir(child))
                else:
                    folder.entries.pop(name, None)  # git has no empty trees in a commit
        entries = {n: e for n, e in folder.entries.items() if not (e[0] == TREE_MODE and e[1] == "")}
        folder.dirty = False
        return self._store.write_tree(entries)

    # -- paths --------------------------------------------------------------------------

    def _locate(self, path: str, *, create: bool) -> tuple[_Dir | None, str]:
        parent, _, name = path.rpartition("/")
        folder = self._dir(parent, create=create)
        if create and folder is not None:
            self._mark_dirty(path)
        return folder, name

    def _dir(self, path: str, *, create: bool) -> _Dir | None:
        folder = self._root
        if not path:
            return folder
        for part in path.split("/"):
            child = folder.children.get(part)
            if child is None:
                entry = folder.entries.get(part)
                if entry is not None and entry[0] == TREE_MODE and entry[1]:
                    child = _Dir(dict(self._store.tree_entries(entry[1])))
                elif create:
                    child = _Dir({})
                    folder.entries[part] = (TREE_MODE, "")
                else:
                    return None
                folder.children[part] = child
            folder = child
        return folder

    def _mark_dirty(self, path: str) -> None:
        folder = self._root
        folder.dirty = True
        for part in path.split("/")[:-1]:
            folder = folder.children[part]
            folder.dirty = True
