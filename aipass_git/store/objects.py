"""Git objects without a git process per object.

Reads go through one long-lived `git cat-file --batch-command` (it understands packs,
alternates and ref names); writes are done in-process as loose objects, the format git
itself writes (zlib-deflated `<type> <size>\\0<data>`, named by its hash). A process that
dies mid-write leaves at most an unreferenced object, which `git gc` removes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core.errors import AipassError

TREE_MODE = "40000"
BLOB_MODE = "100644"


@dataclass(frozen=True)
class Ident:
    name: str
    email: str

    def stamp(self, when: float | None = None) -> str:
        seconds = int(time.time() if when is None else when)
        return f"{_clean(self.name)} <{_clean(self.email)}> {seconds} +0000"


def _clean(text: str) -> str:
    # git forbids these in identities; a name must not smuggle a header line
    return "".join(c for c in text if c not in "<>\n\r\0").strip() or "unknown"


class ObjectWriter:
    """Writes loose objects into a repository's object database."""

    def __init__(self, objects_dir: Path, hash_name: str = "sha1") -> None:
        self.objects_dir = objects_dir
        self.hash_name = hash_name
        self._known_dirs: set[str] = set()

    def hash(self, kind: str, data: bytes) -> str:
        h = hashlib.new(self.hash_name)
        h.update(f"{kind} {len(data)}\0".encode())
        h.update(data)
        return h.hexdigest()

    def write(self, kind: str, data: bytes) -> str:
        header = f"{kind} {len(data)}\0".encode()
        h = hashlib.new(self.hash_name, header)
        h.update(data)
        oid = h.hexdigest()
        folder = self.objects_dir / oid[:2]
        path = folder / oid[2:]
        if oid[:2] not in self._known_dirs:
            folder.mkdir(exist_ok=True)
            self._known_dirs.add(oid[:2])
        if path.exists():
            return oid
        # Written under a temporary name and renamed, so no reader ever sees a partial
        # object; created read-only (0444), as git does, without a separate chmod.
        tmp = folder / f"tmp_obj_{os.getpid()}_{os.urandom(6).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            remaining = memoryview(zlib.compress(header + data, 1))
            while remaining:
                remaining = remaining[os.write(fd, remaining):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        return oid

    def blob(self, data: bytes) -> str:
        return self.write("blob", data)

    def tree(self, entries: dict[str, tuple[str, str]]) -> str:
        return self.write("tree", encode_tree(entries, self.hash_name))

    def commit(self, tree: str, parents: list[str], author: Ident, committer: Ident, message: str) -> str:
        now = time.time()
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents),
                 f"author {author.stamp(now)}", f"committer {committer.stamp(now)}", "", message]
        return self.write("commit", "\n".join(lines).encode("utf-8"))


def _sort_key(item: tuple[str, tuple[str, str]]) -> bytes:
    # git orders tree entries by name, comparing a subtree as if its name ended in "/"
    name, (mode, _) = item
    return name.encode() + (b"/" if mode == TREE_MODE else b"")


def encode_tree(entries: dict[str, tuple[str, str]], hash_name: str = "sha1") -> bytes:
    out = bytearray()
    for name, (mode, oid) in sorted(entries.items(), key=_sort_key):
        out += f"{mode} {name}\0".encode() + bytes.fromhex(oid)
    return bytes(out)


def decode_tree(data: bytes, hash_len: int = 20) -> dict[str, tuple[str, str]]:
    entries: dict[str, tuple[str, str]] = {}
    i = 0
    while i < len(data):
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        mode = data[i:space].decode()
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = (mode, data[nul + 1 : nul + 1 + hash_len].hex())
        i = nul + 1 + hash_len
    return entries


def commit_tree_and_parents(data: bytes) -> tuple[str, list[str]]:
    tree, parents = "", []
    for line in data.split(b"\n"):
        if not line:
            break
        if line.startswith(b"tree "):
            tree = line[5:].decode()
        elif line.startswith(b"parent "):
            parents.append(line[7:].decode())
    return tree, parents


class ObjectReader:
    """One `git cat-file --batch-command` process, kept for the life of this object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            try:
                self._proc = subprocess.Popen(
                    ["git", "cat-file", "--batch-command"], cwd=self.root,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )
            except FileNotFoundError:
                raise AipassError("git is not installed or not on PATH", "install git 2.38 or newer") from None
        return self._proc

    def resolve(self, rev: str) -> str | None:
        """The object id REV (a ref name, an id) names, or None when it does not exist."""
        proc = self._start()
        proc.stdin.write(f"info {rev}\n".encode())
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise AipassError("git cat-file stopped unexpectedly", "check the repository with: git fsck")
        parts = line.split()
        return None if parts[-1] == b"missing" or len(parts) != 3 else parts[0].decode()

    def read(self, oid: str) -> tuple[str, bytes]:
        return self.read_many([oid])[0]

    def read_many(self, oids: list[str], chunk: int = 64) -> list[tuple[str, bytes]]:
        """Objects in the order asked. Requests are sent in chunks, so pipes never fill both ways."""
        proc = self._start()
        out: list[tuple[str, bytes]] = []
        for start in range(0, len(oids), chunk):
            batch = oids[start : start + chunk]
            proc.stdin.write("".join(f"contents {o}\n" for o in batch).encode())
            proc.stdin.flush()
            for oid in batch:
                header = proc.stdout.readline()
                parts = header.split()
                if len(parts) != 3:
                    raise AipassError(f"object {oid} is missing from the repository", "check it with: git fsck")
                size = int(parts[2])
                data = proc.stdout.read(size)
                proc.stdout.read(1)  # the newline after each object
                out.append((parts[1].decode(), data))
        return out

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.wait()
            self._proc = None
