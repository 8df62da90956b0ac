"""Private signing keys: per user and per repository, outside the repository.

    $XDG_CONFIG_HOME/aipass-git/keys/<keyring id>/<email>.key     (0600, folder 0700)

The keyring id is random and kept in the repository's config (`aipass.keyring`), so a
repository keeps its keys when its folder moves, and two clones have keys of their own.
The human may sign with their own git SSH signing key instead (`gpg.format=ssh` and
`user.signingKey` naming an unencrypted Ed25519 key file). Public keys are committed:
see agents/trust.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.store.signing import Key

ID_KEY = "aipass.keyring"
_SAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def config_home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aipass-git" / "keys"


class Keyring:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._folder: Path | None = None
        self._keys: dict[str, Key | None] = {}

    def folder(self, *, create: bool = False) -> Path | None:
        if self._folder is None:
            ident = git.config_get(self.root, ID_KEY)
            if ident is None or not re.fullmatch(r"[0-9a-f]{16}", ident):
                if not create:
                    return None
                ident = os.urandom(8).hex()  # secrets.token_hex's source, without its import
                git.config_set(self.root, ID_KEY, ident)
            self._folder = config_home() / ident
        return self._folder

    def path(self, email: str, *, create: bool = False) -> Path | None:
        folder = self.folder(create=create)
        return folder / f"{_SAFE.sub('_', email)}.key" if folder else None

    def get(self, email: str) -> Key | None:
        """The private key of EMAIL's principal in this clone, or None."""
        if email not in self._keys:
            path = self.path(email)
            self._keys[email] = Key.load(path) if path is not None and path.is_file() else None
        return self._keys[email]

    def has(self, email: str) -> bool:
        """Whether this clone holds a private key for EMAIL (the file, not read: parsing a
        key imports the crypto library)."""
        if self._keys.get(email) is not None:
            return True
        path = self.path(email)
        return path is not None and path.is_file()

    def put(self, email: str, key: Key) -> Path:
        path = self.path(email, create=True)
        assert path is not None
        key.save(path)
        self._keys[email] = key
        return path

    def create(self, email: str) -> Key:
        """EMAIL's key, made now when this clone has none."""
        key = self.get(email)
        if key is None:
            key = Key.generate()
            self.put(email, key)
        return key


def own_ssh_key_path(root: Path) -> Path | None:
    """The private key file of the human's git SSH signing key (`gpg.format=ssh`,
    `user.signingKey` naming a key file), when there is one."""
    if (git.config_get(root, "gpg.format") or "") != "ssh":
        return None
    named = git.config_get(root, "user.signingKey")
    if not named or named.startswith(("ssh-", "key::")):
        return None
    path = Path(os.path.expanduser(named))
    path = path.with_suffix("") if path.suffix == ".pub" else path
    return path if path.is_file() else None


def own_ssh_key(root: Path) -> Key | None:
    """The human's git SSH signing key, when git is set to sign with one we can use."""
    path = own_ssh_key_path(root)
    try:
        return Key.load(path) if path is not None else None
    except AipassError:
        return None  # encrypted or not Ed25519: the human gets a key of their own
