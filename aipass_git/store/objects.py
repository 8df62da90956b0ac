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
from functools import cached_property
from pathlib import Path
from typing import Callable

from aipass_git.core import git
from aipass_git.core.errors import AipassError

TREE_MODE = "40000"
BLOB_MODE = "100644"


SMALL = 4096  # bytes: most event objects (a message, an index shard, a tree, a commit)


def deflate(data: bytes) -> bytes:
    """zlib-deflate DATA as git stores objects. A small object is stored (deflate level 0):
    compressing costs 50-100 us per object on this kind of machine however small the
    object, six objects per delivered message, while a stored one costs ~2 us; a message's
    trees and signed commit hardly compress anyway (a send @all's pack is ~35% bigger).
    Loose objects are compressed again when git packs them; `git gc --aggressive`
    recompresses packed ones."""
    if len(data) > SMALL:
        return zlib.compress(data, 1)
    packer = zlib.compressobj(0, zlib.DEFLATED, 9, 1)
    return packer.compress(data) + packer.flush()


@dataclass(frozen=True)
class Ident:
    name: str
    email: str

    @cached_property
    def _who(self) -> str:
        return f"{_clean(self.name)} <{_clean(self.email)}>"

    def stamp(self, when: float | None = None) -> str:
        seconds = int(time.time() if when is None else when)
        return f"{self._who} {seconds} +0000"


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
        for attempt in range(3):
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                break
            except FileNotFoundError:
                # a repack's prune-packed removes fan-out folders it emptied, ours included;
                # git's own writer makes the folder again and retries, and so do we
                if attempt == 2:
                    raise
                folder.mkdir(exist_ok=True)
        try:
            remaining = memoryview(deflate(header + data))
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

    def commit(self, tree: str, parents: list[str], author: Ident, committer: Ident, message: str,
               sign: Callable[[bytes], bytes] | None = None) -> str:
        """A commit object; SIGN, when given, turns its content into the signed content
        (signing.Key.sign_commit adds the `gpgsig` header)."""
        now = time.time()
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents),
                 f"author {author.stamp(now)}", f"committer {committer.stamp(now)}", "", message]
        payload = "\n".join(lines).encode("utf-8")
        return self.write("commit", sign(payload) if sign else payload)


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


class _Pipe:
    """Buffered reads from a raw pipe: lines and exact sizes, without per-call overhead."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> bool:
        if self.pos and self.pos > len(self.buf) // 2:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = os.read(self.fd, 1 << 18)
        self.buf += chunk
        return bool(chunk)

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                out = bytes(self.buf[self.pos : end])
                self.pos = end + 1
                return out
            if not self._fill():
                return b""

    def exact(self, size: int) -> bytes:
        while len(self.buf) - self.pos < size:
            if not self._fill():
                raise EOFError
        out = bytes(self.buf[self.pos : self.pos + size])
        self.pos += size
        return out


class ObjectReader:
    """One `git cat-file --batch-command` process, kept for the life of this object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: subprocess.Popen | None = None
        self._out: _Pipe | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            try:
                self._proc = subprocess.Popen(
                    ["git", "cat-file", "--batch-command"], cwd=self.root, bufsize=0,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )
            except FileNotFoundError:
                raise AipassError("git is not installed or not on PATH", "install git 2.38 or newer") from None
            self._out = _Pipe(self._proc.stdout.fileno())
        return self._proc

    def _batch_name(self, name: str) -> str | None:
        """NAME as one line of the batch protocol: a name with a line break in it (a file
        called "a\ncontents HEAD:x") would be read as two commands, and git drops a carriage
        return before the line's end (":creds.txt\r" would read ":creds.txt"), so such a
        name is resolved to its object id by a git argument instead; None when it names
        nothing."""
        if "\n" not in name and "\r" not in name:
            return name
        return git.resolve_object(self.root, name)

    def resolve(self, rev: str) -> str | None:
        """The object id REV (a ref name, an id) names, or None when it does not exist."""
        safe = self._batch_name(rev)
        if safe is None:
            return None
        proc = self._start()
        proc.stdin.write(f"info {safe}\n".encode())
        line = self._out.line()
        if not line:
            raise AipassError("git cat-file stopped unexpectedly", "check the repository with: git fsck")
        parts = line.split()
        return None if parts[-1] == b"missing" or len(parts) != 3 else parts[0].decode()

    def read(self, oid: str) -> tuple[str, bytes]:
        return self.read_many([oid])[0]

    def read_many(self, oids: list[str], chunk: int = 512, *, missing_ok: bool = False) -> list:
        """Objects in the order asked (None for a missing one when MISSING_OK). Requests go
        in chunks small enough for the pipe's buffer, so git never blocks on a full stdout
        while we still write its stdin."""
        proc = self._start()
        out: list = []
        # a name that cannot be said on one line and names nothing reads as missing
        names = [self._batch_name(o) or f"{'0' * 40} (missing)" for o in oids]
        for start in range(0, len(oids), chunk):
            batch = oids[start : start + chunk]
            proc.stdin.write("".join(f"contents {o}\n" for o in names[start : start + chunk]).encode())
            for oid in batch:
                line = self._out.line()
                # "<name> missing" repeats the name asked, spaces and all ("HEAD:a b missing")
                if line.endswith(b" missing") or len(parts := line.split()) != 3:
                    if missing_ok and line.endswith(b" missing"):
                        out.append(None)
                        continue
                    raise AipassError(f"object {oid} is missing from the repository", "check it with: git fsck")
                data = self._out.exact(int(parts[2]) + 1)  # the object, then a newline
                out.append((parts[1].decode(), data[:-1]))
        return out

    def close(self) -> None:
        git.finish(self._proc)
        self._proc = None
