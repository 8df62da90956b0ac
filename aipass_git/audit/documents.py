"""Schema checks of .aipass documents as they are somewhere else than the work tree:
staged in the index (pre-commit) or in a merge being checked (the merge queue)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Callable

from aipass_git.audit.engine import Finding
from aipass_git.core import config as config_mod
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import AGENTS_DIR, CONFIG_FILE
from aipass_git.agents import passport
from aipass_git.memory import working


def validate(paths: list[str], read: Callable[[str], bytes | None]) -> list[Finding]:
    """Findings for the config, passports and memory files among PATHS, read by READ."""
    out = []
    for rel in paths:
        if not rel.startswith(".aipass/"):
            continue
        parts = PurePosixPath(rel).parts
        is_agent_file = rel.startswith(AGENTS_DIR) and len(parts) == 4
        if not (rel == CONFIG_FILE or (is_agent_file and parts[3] in ("passport.json", "memory.json"))):
            continue
        data = read(rel)
        if data is None:
            continue
        try:
            if rel == CONFIG_FILE:
                config_mod.parse(data.decode("utf-8", "replace"), rel)
            elif parts[3] == "passport.json":
                passport.parse(data, rel, expected_name=parts[2])
            else:
                working.parse(data, rel, parts[2])
        except AipassError as exc:
            out.append(Finding(rel, 0, "aipass.validate", "error", exc.message, exc.hint or ""))
    return out
