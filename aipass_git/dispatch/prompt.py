"""The wake prompt: who the agent is, what it knows, what is waiting, the task, the protocol."""

from __future__ import annotations

from typing import Any

from aipass_git.core import schemas
from aipass_git.core.repo import Repo
from aipass_git.memory.search import related

MAX_MEMORY_ENTRIES = 15  # per section, newest first
MAX_UNREAD = 20


def related_memories(repo: Repo, agent: str, text: str, k: int = 5) -> list[str]:
    """Archived memories most related to TEXT (by meaning with the memory extra, else by keywords)."""
    return related(repo, agent, text, k)


def assemble(
    *,
    passport: dict[str, Any],
    readme: str,
    memory: dict[str, Any],
    related: list[str],
    unread: list[dict[str, Any]],
    task: dict[str, Any],
    desk: str,
    orchestrator: str,
    notes: list[str],
    program: str | None = None,
) -> str:
    name = passport["name"]
    parts = [
        f"# You are @{name}",
        f"Role: {passport['role']}",
        f"Owned paths: {', '.join(passport['owns']) or '(none)'}",
        "",
        "## Your domain notes (README)",
        readme.strip() or "(none yet)",
        "",
        "## Your working memory",
        _memory(memory),
    ]
    if related:
        parts += ["", "## Related archived memories", *(f"- {r}" for r in related)]
    others = [m for m in unread if m["id"] != task["id"]][:MAX_UNREAD]
    if others:
        parts += ["", "## Also waiting in your inbox (unread)"]
        parts += [f"- {m['id']} from @{m['from']} ({m['kind']}): {m['subject']}" for m in others]
    parts += [
        "",
        "## The task",
        f"Message {task['id']} from @{task['from']}, sent {task['created']}",
        f"Subject: {task['subject']}",
        "",
        task["body"].strip() or "(no details)",
    ]
    if notes:
        parts += ["", "## Notes from the supervisor", *(f"- {n}" for n in notes)]
    parts += [
        "",
        "## How to work here",
        f"- Your desk is {desk}, a git worktree on branch aipass/{name}. Work and commit there only;",
        "  never commit on the base branch or on another agent's branch.",
        f"- Answer the task when you are done: git aipass reply {task['id']} \"what you did, what is left\"",
        "- Commit your work on your branch, then open a PR: git aipass pr open --title \"...\"",
        f"  Never merge it yourself: @{orchestrator} merges after the audit passes.",
        "- Record what you learned for next time: git aipass memory add \"...\"",
        "- Ask another agent: git aipass send @agent \"subject\" \"details\"; your inbox: git aipass inbox",
    ]
    if program:
        parts += [f"- `git aipass` is the program {program}; call it by that path if `git aipass` is not found."]
    parts.append("")
    return "\n".join(parts)


def _memory(memory: dict[str, Any]) -> str:
    lines = []
    for section in schemas.MEMORY_SHOWN:
        entries = memory.get(section, [])[-MAX_MEMORY_ENTRIES:]
        if entries:
            lines.append(f"{section.capitalize()}:")
            lines += [f"- {e['created'][:10]}: {e['text']}" for e in reversed(entries)]
    return "\n".join(lines) if lines else "(empty: this is your first session, or nothing was recorded yet)"
