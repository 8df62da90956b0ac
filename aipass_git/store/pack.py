"""A batch of objects written as one pack, in-process, then indexed by `git index-pack`.

Loose objects cost a file each (six per event); a bulk send of 10,000 events would write
60,000 files. git 2.39's fast-import writes one pack but cannot carry commit signatures,
so a signing clone builds the pack itself: every object deflated once, no deltas, the
pack checksum at the end, and one `git index-pack --stdin` that checks every object and
moves pack and index into place together. Until it has, nothing references the objects
(refs move after, in one transaction), so a crash leaves at most a temporary file.

Objects written in the batch stay readable through `get` until the pack is in place, so
a later event of the same batch reads what an earlier one wrote.
"""

from __future__ import annotations

import hashlib

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.store.objects import ObjectWriter, deflate

TYPES = {"commit": 1, "tree": 2, "blob": 3}
INDEX_SECONDS = 600.0


class PackWriter(ObjectWriter):
    """An ObjectWriter whose objects go into one pack (see the module)."""

    def __init__(self, root, objects_dir, hash_name: str = "sha1") -> None:
        super().__init__(objects_dir, hash_name)
        self.root = root
        self._entries: list[bytes] = []
        self._raw: dict[str, tuple[str, bytes]] = {}

    def write(self, kind: str, data: bytes) -> str:
        oid = self.hash(kind, data)
        if oid not in self._raw:
            self._raw[oid] = (kind, data)
            self._entries.append(_header(TYPES[kind], len(data)) + deflate(data))
        return oid

    def get(self, oid: str) -> tuple[str, bytes] | None:
        return self._raw.get(oid)

    def finish(self) -> None:
        """Index the pack into the repository (nothing to do for an empty batch)."""
        if not self._entries:
            return
        body = b"PACK" + (2).to_bytes(4, "big") + len(self._entries).to_bytes(4, "big") + b"".join(self._entries)
        pack = body + hashlib.new(self.hash_name, body).digest()
        proc = git.run(["index-pack", "--stdin"], self.root, input=pack, check=False, timeout=INDEX_SECONDS)
        if proc.returncode != 0:
            raise AipassError(f"git index-pack refused a batch of {len(self._entries)} objects: "
                              f"{proc.stderr.decode('utf-8', 'replace').strip()[-300:]}",
                              "nothing was changed; check the repository with: git fsck")
        self._entries, self._raw = [], {}


def _header(kind: int, size: int) -> bytes:
    """The pack entry header: type and size, 4 bits then 7 bits a byte, high bit = more."""
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)
