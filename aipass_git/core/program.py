"""How to run this installation of aipass-git from elsewhere: git hooks, git's diff and
merge drivers, and the agents' own `git aipass` calls on their desks."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

NAME = "git-aipass"
ENV = "AIPASS_BIN"  # set by a dispatch for the processes it starts: the git-aipass that ran


def program() -> str | None:
    """The absolute path of this installation's `git-aipass`, or None when none is found."""
    given = os.environ.get(ENV)
    if given and os.access(given, os.X_OK):
        return given
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == NAME and os.access(argv0, os.X_OK):
        return str(argv0.resolve())
    beside = Path(sysconfig.get_path("scripts")) / NAME  # a venv's bin/, or the user scheme's
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(NAME)


def module_argv(module: str) -> list[str]:
    """This Python running MODULE (-m). With -P: these processes start in a repository's
    folder, and a folder named aipass_git there (this project's own checkout, or a hostile
    repository) must not stand in for the installed package."""
    return [sys.executable, "-P", "-m", module]


def argv() -> list[str]:
    """The words that run aipass-git: the program, or this Python with -m."""
    found = program()
    return [found] if found else module_argv("aipass_git")


def command() -> str:
    """`argv()` as a shell command line, each word quoted (paths with spaces included)."""
    return " ".join(shlex.quote(word) for word in argv())


def run_detached(cwd: Path, *args: str) -> None:
    """Start `git aipass ARGS` (this Python, -m) in CWD as a process of its own session, with
    no terminal, and return at once: hooks and long-lived processes hand work on that must
    not hold them (an index sync, a plan to advance) or that sits in a higher layer."""
    subprocess.Popen([*module_argv("aipass_git"), *args], cwd=cwd, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


TRIGGERS_FILE = ".aipass/triggers.yaml"
SWEEPING = "AIPASS_TRIGGERS_SWEEP"  # set by a sweep for its own actions (the repository's root)


def kick_triggers(root: Path, runtime_dir: Path) -> None:
    """Whoever sees an event (a dispatch ending, a PR, mail, a plan's phase, a commit)
    calls this: a triggers sweep runs in a process of its own, unless the repository has
    no rules or a daemon runs the sweeps already. Costs a stat or two when there is
    nothing to do."""
    if not (root / TRIGGERS_FILE).is_file():
        return
    if os.environ.get(SWEEPING) == str(root):
        # an action of a sweep running here: it looks again before it stops
        (runtime_dir / "triggers").mkdir(parents=True, exist_ok=True)
        (runtime_dir / "triggers" / "pending").touch()
        return
    try:
        pid = int(json.loads((runtime_dir / "locks" / "daemon.lock.holder").read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
        return  # the daemon follows the refs and the log itself
    except (OSError, ValueError, KeyError, TypeError):
        pass
    run_detached(root, "triggers", "sweep", "--quiet")
