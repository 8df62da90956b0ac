"""The built-in local agent: a small program that really does a task, with no AI behind it.

Used by `git aipass demo` and the tests through the `command` provider:

    providers:
      command:
        argv: [python3, -m, aipass_git.dispatch.local_agent, "{prompt_file}"]

It reads its task through the CLI (`git aipass read`), writes a note about it on its desk
and commits it, records a learning (`git aipass memory add`), opens a PR (`git aipass pr
open`), and replies. It
prints a JSON result as the AI CLIs do, so the supervisor learns the outcome the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path



def _run(*args: str, cwd: Path) -> str:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {proc.stderr.strip()}")
    return proc.stdout


def work(desk: Path, agent: str, dispatch_id: str) -> dict:
    task = json.loads(_run("git", "aipass", "read", dispatch_id, "--json", cwd=desk))
    note = desk / "notes" / agent / f"{task['id']}.md"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(
        f"# {task['subject']}\n\nAsked by @{task['from']} on {task['created']}.\n\n{task['body'].strip()}\n\n"
        f"Handled by @{agent}, the built-in local agent: this note is the work.\n",
        encoding="utf-8",
    )
    rel = str(note.relative_to(desk))
    _run("git", "add", "--", rel, cwd=desk)
    # a retried attempt finds the note committed by the one before: nothing to commit then
    if subprocess.run(["git", "diff", "--cached", "--quiet", "--", rel], cwd=desk).returncode != 0:
        _run("git", "commit", "--quiet", "-m", f"{agent}: {task['subject']}"[:200], "-m",
             f"Aipass-Dispatch: {task['id']}", "--", rel, cwd=desk)
    commit = _run("git", "rev-parse", "--short", "HEAD", cwd=desk).strip()
    _run("git", "aipass", "memory", "add", f"@{task['from']} asked: {task['subject']} - answered with a note in notes/{agent}/.", cwd=desk)
    pr = json.loads(_run("git", "aipass", "pr", "open", "--title", task["subject"][:200], "--json", cwd=desk))["pr"]
    _run("git", "aipass", "reply", task["id"],
         f"Done: wrote {rel} (commit {commit} on aipass/{agent}), recorded a learning, and opened PR {pr['id'][:12]}.",
         cwd=desk)
    return {"type": "result", "is_error": False, "result": f"commit {commit}", "commit": commit}


def main(argv: list[str] | None = None) -> int:
    agent = os.environ.get("AIPASS_AGENT")
    dispatch_id = os.environ.get("AIPASS_DISPATCH")
    if not agent or not dispatch_id:
        sys.stderr.write("local agent: AIPASS_AGENT and AIPASS_DISPATCH must be set (it runs under `git aipass dispatch`)\n")
        return 2
    try:
        result = work(Path.cwd(), agent, dispatch_id)
    except (RuntimeError, OSError, ValueError) as exc:
        sys.stderr.write(f"local agent: {exc}\n")
        print(json.dumps({"type": "result", "is_error": True, "result": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
