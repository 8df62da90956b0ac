"""Repository hygiene: conflict markers, oversized files, home paths in memory, canonical JSON."""

from __future__ import annotations

import json
import re

from aipass_git.audit.engine import Problem, standard
from aipass_git.core.canonical import dumps

MAX_BYTES = 5 * 1024 * 1024
MARKER = re.compile(r"^(<{7}|>{7})( |$)|^={7}$")
HOME = re.compile(r"(/home/[^/\s\"']+/|/Users/[^/\s\"']+/|[A-Za-z]:\\\\?Users\\\\?[^\\\s\"']+)")


@standard("hygiene.conflict-markers", "no merge conflict markers left in files", scope="file")
def conflict_markers(ctx):
    for rel in ctx.files:
        text = ctx.text(rel)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if MARKER.match(line):
                yield Problem(rel, "conflict marker left from a merge", "resolve the conflict and remove the markers", line=number)


@standard("hygiene.file-size", f"no file over {MAX_BYTES // 2**20} MiB", scope="file", severity="warning")
def file_size(ctx):
    for rel in ctx.files:
        path = ctx.repo.root / rel
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            yield Problem(rel, f"{path.stat().st_size // 2**20} MiB", "large files bloat every clone; use Git LFS or keep it out")


@standard("hygiene.home-paths", "memory and archives hold no absolute home paths of one machine", severity="warning")
def home_paths(ctx):
    for rel in ctx.aipass_files():
        if rel.endswith(("memory.json", ".jsonl")):
            text = ctx.text(rel) or ""
            for number, line in enumerate(text.splitlines(), 1):
                if HOME.search(line):
                    yield Problem(rel, f"absolute home path {HOME.search(line).group(0)!r}",
                                  "write paths relative to the repository: they must hold on every machine", line=number)


@standard("hygiene.canonical-json", ".aipass JSON is canonical (sorted keys, 2-space indent, final newline)", severity="warning")
def canonical_json(ctx):
    for rel in ctx.aipass_files():
        if rel.endswith(".json"):
            text = ctx.text(rel)
            try:
                doc = json.loads(text) if text is not None else None
            except json.JSONDecodeError:
                continue  # the validity standards report it
            if doc is not None and text != dumps(doc):
                yield Problem(rel, "not in canonical form: diffs will be noisy",
                              "write it through git aipass, or reformat: sorted keys, 2-space indent, final newline")


STANDARDS = [conflict_markers, file_size, home_paths, canonical_json]
