"""Ownership: every owned glob means something, and no path has two owners."""

from __future__ import annotations

from aipass_git.agents.ownership import pattern as owned_pattern
from aipass_git.audit.engine import Problem, standard
from aipass_git.core.repo import AGENTS_DIR


@standard("ownership.globs-match", "every glob an agent owns matches at least one tracked file", severity="warning")
def globs_match(ctx):

    for agent in ctx.agents:
        if not agent.active:
            continue
        for glob in agent.owns:
            pattern = owned_pattern([glob])
            if not any(pattern.match(f) for f in ctx.tracked):
                yield Problem(f"{AGENTS_DIR}/{agent.name}/passport.json", f"owned glob {glob!r} matches no tracked file",
                              "fix the glob or remove it from the passport")


@standard("ownership.no-overlap", "no tracked file is owned by two active agents")
def no_overlap(ctx):
    owners: dict[str, list[str]] = {}
    for agent in ctx.agents:
        if agent.active:
            for path in ctx.owned_by(agent):
                owners.setdefault(path, []).append(agent.name)
    for path, names in sorted(owners.items()):
        if len(names) > 1:
            yield Problem(path, f"owned by {', '.join('@' + n for n in names)}",
                          "one owner per path: narrow the --owns globs in the passports")


STANDARDS = [globs_match, no_overlap]
