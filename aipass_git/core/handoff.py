"""Handing a command to the warm process of `git aipass daemon` (the asker's side).

Starting Python and importing typer, click and a command's modules costs ~100 ms, often
more than the command's own work. While the daemon runs it keeps a process with all of
that imported (cli/warm.py), listening on a Unix socket in the runtime dir. `git aipass`
looks for that socket with a few stats and no git process; when it is there, it sends
its argv, working folder, environment and umask, and its stdin, stdout and stderr
themselves (SCM_RIGHTS). The warm process forks, and the fork runs the command in the
asker's place and says its exit code. Meanwhile the asker relays the signals it gets
(Ctrl-C, a hang-up, a TERM): one byte each, the signal's number. If the asker dies, the
command is hung up on.

Anything amiss before the command starts (no daemon, a stale socket, another
installation) and the asker runs the command itself; once the warm side said `started`,
it never runs it a second time. This module imports only the standard library, so that
asking costs a few milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys

SOCKET = "cli.sock"  # in the runtime dir, <git common dir>/aipass
OFF_ENV = "AIPASS_NO_WARM"  # set (to anything) to run every command in its own process
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
# the daemon itself; the monitor, a full-screen program whose window resizes are signals
# to the terminal's foreground process (the asker); the demo, which builds a repository of
# its own for a minute
NOT_HANDED = frozenset({"daemon", "monitor", "demo"})
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
STARTED = b"started\n"
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def identity() -> dict[str, str]:
    """What must be equal on both sides: the same Python, environment (a venv's prefix:
    its libraries) and copy of the code."""
    return {"python": os.path.realpath(sys.executable), "prefix": sys.prefix, "package": PACKAGE}


def socket_in(common_dir: str) -> str:
    return os.path.join(common_dir, "aipass", SOCKET)


def find_socket(cwd: str) -> str | None:
    """The warm socket of the repository around CWD, found as git finds the repository
    (a `.git` folder, or a worktree's `.git` file and its `commondir`), or None. GIT_DIR
    and its kin are not looked at: the command runs with the asker's environment and
    folder, so any warm process of this installation runs it alike."""
    folder = cwd
    while True:
        dot = os.path.join(folder, ".git")
        if os.path.isdir(dot):
            common = dot
            break
        if os.path.isfile(dot):
            try:
                with open(dot, encoding="utf-8") as fh:
                    first = fh.readline().strip()
                if not first.startswith("gitdir:"):
                    return None
                gitdir = os.path.join(folder, first[len("gitdir:"):].strip())
                with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
                    common = os.path.join(gitdir, fh.read().strip())
            except OSError:
                return None  # a submodule's .git file, or a broken worktree: run it here
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    path = socket_in(common)
    return path if len(path) <= MAX_SOCKET_PATH and os.path.exists(path) else None


def streams() -> list[list[str | None]]:
    """The asker's text encodings of stdin, stdout and stderr (the warm process's were set
    by the daemon's locale)."""
    return [[getattr(s, "encoding", None), getattr(s, "errors", None)] for s in (sys.stdin, sys.stdout, sys.stderr)]


def run(argv: list[str]) -> int | None:
    """Run ARGV in the warm process and return its exit code, or None when it was not
    run there (then the caller runs it)."""
    if os.environ.get(OFF_ENV) or (argv and argv[0] in NOT_HANDED):
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    path = find_socket(cwd)
    if path is None:
        return None
    import socket  # deferred: a command with no daemon to hand it to need not import it

    umask = os.umask(0o22)
    os.umask(umask)
    request = {"argv": argv, "argv0": sys.argv[0] if sys.argv else "git-aipass", "cwd": cwd,
               "env": dict(os.environ), "umask": umask, "streams": streams(), **identity()}
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        socket.send_fds(conn, [json.dumps(request).encode("utf-8", "surrogateescape") + b"\n"], [0, 1, 2])
        reply = _line(conn)
    except OSError:  # no daemon behind a stale socket, a closed stdin, the daemon going away
        conn.close()
        return None
    if reply != STARTED:
        conn.close()
        return None  # another installation, or code changed since the warm process started
    with conn:
        return _wait(conn)


def _line(conn) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            break
        data += chunk
    return data


def _wait(conn) -> int:
    """The command's exit code, relaying our signals to it until then."""

    def relay(signum: int, _frame) -> None:
        try:
            conn.sendall(bytes([signum]))
        except OSError:
            pass  # it ended meanwhile; its exit code is on the way

    for signum in RELAYED:
        signal.signal(signum, relay)
    ended = _line(conn)
    if not ended.startswith(b"exit "):
        sys.stderr.write("error: the command ended without an exit code (the aipass daemon's warm process was stopped)\n")
        return 1
    return int(ended.split()[1])
