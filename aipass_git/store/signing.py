"""SSH signatures on commits, made and checked in-process, in the format git itself uses
(`gpg.format=ssh`): an SSHSIG blob (namespace "git", SHA-512) in the commit's `gpgsig`
header, so `git verify-commit` and `git log --show-signature` check aipass events with
nothing but git's config (`gpg.ssh.allowedSignersFile`).

The SSHSIG layout is OpenSSH's PROTOCOL.sshsig: the signed data is
`"SSHSIG" || string(namespace) || string(reserved) || string(hash) || string(H(message))`
and the blob is `"SSHSIG" || uint32(1) || string(public key) || string(namespace) ||
string(reserved) || string(hash) || string(signature)`. Keys are Ed25519 (`cryptography`,
imported only when a key is used: ~15 ms).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core.errors import AipassError, RefusedError

MAGIC = b"SSHSIG"
NAMESPACE = b"git"
HASH = b"sha512"
KEY_TYPE = "ssh-ed25519"
BEGIN, END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _read_string(data: bytes, at: int) -> tuple[bytes, int]:
    if at + 4 > len(data):
        raise ValueError("truncated")
    size = struct.unpack(">I", data[at:at + 4])[0]
    if at + 4 + size > len(data):
        raise ValueError("truncated")
    return data[at + 4:at + 4 + size], at + 4 + size


def key_blob(public_line: str) -> bytes:
    """The wire form of an `ssh-ed25519 AAAA...` public key line."""
    parts = public_line.split()
    if len(parts) < 2 or parts[0] != KEY_TYPE:
        raise RefusedError(f"not an ssh-ed25519 public key: {public_line[:40]!r}", "keys are Ed25519 (ssh-keygen -t ed25519)")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        kind, at = _read_string(blob, 0)
        raw, _ = _read_string(blob, at)
    except (ValueError, base64.binascii.Error):
        raise RefusedError(f"a malformed public key: {public_line[:40]!r}", "copy the whole line, as `git aipass key show` prints it") from None
    if kind != KEY_TYPE.encode() or len(raw) != 32:
        raise RefusedError(f"not an ssh-ed25519 public key: {public_line[:40]!r}", "keys are Ed25519")
    return blob


def fingerprint(public_line: str) -> str:
    """SHA256:... as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key_blob(public_line)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Key:
    """A private Ed25519 signing key."""

    private: object  # cryptography's Ed25519PrivateKey
    public_line: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def generate(cls) -> "Key":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # deferred: see the module

        return cls._of(Ed25519PrivateKey.generate())

    @classmethod
    def _of(cls, private) -> "Key":
        from cryptography.hazmat.primitives import serialization  # deferred: see the module

        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return cls(private, public.decode())

    @classmethod
    def load(cls, path: Path) -> "Key":
        from cryptography.hazmat.primitives import serialization  # deferred: see the module
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            private = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise RefusedError(f"{path}: not an unencrypted OpenSSH private key ({exc})",
                               "give an Ed25519 key without a passphrase (ssh-keygen -t ed25519 -N '')") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise RefusedError(f"{path}: not an Ed25519 key", "aipass-git signs with Ed25519 keys (ssh-keygen -t ed25519)")
        return cls._of(private)

    def save(self, path: Path) -> None:
        """Write the key as an OpenSSH private key file readable by its owner only (0600,
        in a 0700 folder), never half-written."""
        from cryptography.hazmat.primitives import serialization  # deferred: see the module

        data = self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def sshsig(self, message: bytes) -> str:
        """The armored SSH signature of MESSAGE in the "git" namespace."""
        signed = MAGIC + _string(NAMESPACE) + _string(b"") + _string(HASH) + _string(hashlib.sha512(message).digest())
        signature = _string(KEY_TYPE.encode()) + _string(self.private.sign(signed))
        blob = (MAGIC + struct.pack(">I", 1) + _string(key_blob(self.public_line)) + _string(NAMESPACE)
                + _string(b"") + _string(HASH) + _string(signature))
        text = base64.b64encode(blob).decode()
        return "\n".join([BEGIN, *(text[i:i + 70] for i in range(0, len(text), 70)), END])

    def sign_commit(self, payload: bytes) -> bytes:
        """PAYLOAD (a commit object's content) with a `gpgsig` header holding its signature,
        placed after the committer line as git places it."""
        return insert_gpgsig(payload, self.sshsig(payload))


def insert_gpgsig(payload: bytes, armored: str) -> bytes:
    head, sep, body = payload.partition(b"\n\n")
    header = b"gpgsig " + armored.encode().replace(b"\n", b"\n ")
    return head + b"\n" + header + sep + body


def split_gpgsig(commit: bytes) -> tuple[bytes, str | None]:
    """(the signed payload, the armored signature or None) of a commit object's content."""
    head, sep, body = commit.partition(b"\n\n")
    lines = head.split(b"\n")
    kept, sig, in_sig = [], [], False
    for line in lines:
        if line.startswith(b"gpgsig "):
            in_sig = True
            sig.append(line[len(b"gpgsig "):])
        elif in_sig and line.startswith(b" "):
            sig.append(line[1:])
        else:
            in_sig = False
            kept.append(line)
    if not sig:
        return commit, None
    return b"\n".join(kept) + sep + body, b"\n".join(sig).decode("utf-8", "replace")


def verify(armored: str, message: bytes, allowed: list[bytes]) -> bytes | None:
    """The key blob among ALLOWED that made ARMORED over MESSAGE, or None when it is not a
    valid "git" signature by one of them."""
    from cryptography.exceptions import InvalidSignature  # deferred: see the module
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    lines = armored.strip().splitlines()
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        return None
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
        if not blob.startswith(MAGIC) or struct.unpack(">I", blob[6:10])[0] != 1:
            return None
        public, at = _read_string(blob, 10)
        namespace, at = _read_string(blob, at)
        reserved, at = _read_string(blob, at)
        hash_name, at = _read_string(blob, at)
        signature, _ = _read_string(blob, at)
        kind, at2 = _read_string(signature, 0)
        raw_sig, _ = _read_string(signature, at2)
        _, at3 = _read_string(public, 0)
        raw_key, _ = _read_string(public, at3)
    except (ValueError, base64.binascii.Error, struct.error):
        return None
    if namespace != NAMESPACE or kind != KEY_TYPE.encode() or public not in allowed or hash_name not in (b"sha512", b"sha256"):
        return None
    digest = hashlib.new(hash_name.decode(), message).digest()
    signed = MAGIC + _string(namespace) + _string(reserved) + _string(hash_name) + _string(digest)
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_sig, signed)
    except (InvalidSignature, ValueError):
        return None
    return public


def key_error(principal: str) -> AipassError:
    if principal.endswith("@aipass.invalid"):
        return RefusedError(f"no signing key for {principal} in this clone: speaking as an agent needs its key",
                            f"bring it from the clone that has it: git aipass key import @{principal.split('@')[0]} FILE")
    return RefusedError(f"no signing key for you ({principal}) in this clone",
                        "`git aipass init` makes one and commits its public key (or set git's own SSH signing key)")
