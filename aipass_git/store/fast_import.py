"""One `git fast-import` stream: many event commits written into one pack.

The commits go on one scratch branch: consecutive events of one ref build on it with
their trees kept in memory by git; where the stream switches refs, a `reset` and a
`from` start the next chain from its parent (a branch per ref would mean a hundred refs
to create and delete for one `send @all`). The stream is written while it is generated,
so git packs on one core while Python builds the next events on the other. The caller
moves the real refs to the marks this returns, in one transaction, and deletes the
scratch branch (events.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from aipass_git.core.errors import AipassError
from aipass_git.store.refs import NO_HOOKS, TOOL_WRITE

FLUSH_BYTES = 1 << 18


class ImportStream:
    def __init__(self, root: Path, scratch: str) -> None:
        self.scratch = scratch.encode()
        env = {**os.environ, **TOOL_WRITE}
        # fast-import allocates and frees a zlib state per object; glibc's default trim
        # threshold hands that memory back to the kernel each time (3x slower here).
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), "glibc.malloc.trim_threshold=67108864"]))
        self.proc = subprocess.Popen(
            ["git", *NO_HOOKS, "fast-import", "--quiet", "--date-format=raw"], cwd=root, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.heads: dict[str, str] = {}  # ref -> ":mark" of its newest commit in this stream
        self.on_scratch: str | None = None  # the ref whose chain the scratch branch holds now
        self._pending: list[bytes] = [b"feature done\n"]
        self._size = 0
        self._mark = 0

    def commit(self, ref: str, parent: str | None, stamp: str, message: str,
               changes: list[tuple[str, bytes | None]]) -> None:
        """One commit on REF's chain (PARENT: REF's tip before the stream): CHANGES are
        (path, content) pairs, None deleting the path."""
        self._mark += 1
        data = message.encode("utf-8")
        who = stamp.encode("utf-8")
        switching = self.on_scratch != ref
        chunk = [b"reset %s\n" % self.scratch] if switching else []
        chunk.append(b"commit %s\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n"
                     % (self.scratch, self._mark, who, who, len(data), data))
        start = self.heads.get(ref) or parent
        if switching and start:
            chunk.append(b"from %s\n" % start.encode())
        for path, content in changes:
            if content is None:
                chunk.append(b"D %s\n" % path.encode())
            else:
                chunk.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(content), content))
        self.on_scratch = ref
        self.heads[ref] = f":{self._mark}"
        self._pending += chunk
        self._size += sum(map(len, chunk))
        if self._size > FLUSH_BYTES:
            self._write()

    def finish(self) -> dict[str, str]:
        """End the stream; returns ref -> its new tip (the scratch branch holds the last one's)."""
        try:
            self._pending += [f"get-mark {head}\n".encode() for head in self.heads.values()]
            self._pending.append(b"done\n")
            self._write()
            self.proc.stdin.close()
            out, err = self.proc.stdout.read(), self.proc.stderr.read()
        except BrokenPipeError:  # git stopped early: its error says why
            out, err = b"", self.proc.stderr.read()
        if self.proc.wait() != 0:
            said = err.decode("utf-8", "replace").strip().splitlines()
            raise AipassError(f"git fast-import failed: {said[-1] if said else 'no output'}",
                              "check the repository with: git fsck")
        return dict(zip(self.heads, out.decode().split()))

    def abort(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def _write(self) -> None:
        self.proc.stdin.write(b"".join(self._pending))
        self._pending, self._size = [], 0
