"""Handing a command to the repository's warm process (the asker's side).

Starting Python and importing typer, click and a command's modules costs ~100 ms, often
more than the command's own work. A warm process keeps all of that imported (cli/warm.py),
listening on a Unix socket in the runtime dir. `git aipass` looks for that socket with a
few stats and no git process; when it is there, it sends its argv, working folder,
environment and umask, and its stdin, stdout and stderr themselves (SCM_RIGHTS). The warm
process forks, and the fork runs the command in the asker's place and says its exit code.
Meanwhile the asker relays the signals it gets (Ctrl-C, a hang-up, a TERM): one byte each,
the signal's number. If the asker dies, the command is hung up on.

When no warm process listens, the command runs in the asker and starts one for the next
command, detached (as build tools keep a server per workspace); it leaves after
IDLE_SECONDS without a command, or when the code on disk changes. Only a repository set
up for aipass-git (its runtime dir exists) gets one. AIPASS_NO_WARM turns all of it off.

Anything amiss before the command starts (a stale socket, another installation) and the
asker runs the command itself; once the warm side said `started`, it never runs it a
second time. This module imports only the standard library, so that asking costs a few
milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

SOCKET = "cli.sock"  # in the runtime dir, <git common dir>/aipass
OFF_ENV = "AIPASS_NO_WARM"  # set (to anything) to run every command in its own process
IDLE_ENV = "AIPASS_WARM_IDLE"  # seconds without a command before the warm process leaves
IDLE_SECONDS = 600.0
START_SECONDS = 10.0  # a start marked this recently (its pid not in the lock yet) is still coming up
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
# the daemon, which runs for as long as it is left; the monitor, a full-screen program
# whose window resizes are signals to the terminal's foreground process (the asker); the
# demo, which builds a repository of its own for a minute; sync and clone, which talk to
# remotes whose git or ssh may ask for a password on the terminal (a fork has none)
NOT_HANDED = frozenset({"daemon", "monitor", "demo", "sync", "clone"})
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
STARTED = b"started\n"
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def identity() -> dict[str, str]:
    """What must be equal on both sides: the same Python, environment (a venv's prefix:
    its libraries) and copy of the code."""
    return {"python": os.path.realpath(sys.executable), "prefix": sys.prefix, "package": PACKAGE}


def socket_in(common_dir: str) -> str:
    return os.path.join(common_dir, "aipass", SOCKET)


def lock_of(path: str) -> str:
    """The file the warm process of socket PATH holds locked while it serves (its pid inside)."""
    return path + ".lock"


def common_dir_of(cwd: str) -> str | None:
    """The git common dir of the repository around CWD, found as git finds the repository
    (a `.git` folder, or a worktree's `.git` file and its `commondir`), or None. GIT_DIR
    and its kin are not looked at: the command runs with the asker's environment and
    folder, so any warm process of this installation runs it alike."""
    folder = cwd
    while True:
        dot = os.path.join(folder, ".git")
        if os.path.isdir(dot):
            return dot
        if os.path.isfile(dot):
            try:
                with open(dot, encoding="utf-8") as fh:
                    first = fh.readline().strip()
                if not first.startswith("gitdir:"):
                    return None
                gitdir = os.path.join(folder, first[len("gitdir:"):].strip())
                with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
                    return os.path.join(gitdir, fh.read().strip())
            except OSError:
                return None  # a submodule's .git file, or a broken worktree: run it here
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def serving(path: str) -> bool:
    """Whether a warm process holds the lock of socket PATH (it serves, or is starting)."""
    import fcntl  # deferred: only a command that found no warm process asks

    try:
        fd = os.open(lock_of(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # a shared lock taken by the probe goes with it
    return False


def _idle() -> str:
    try:
        return str(float(os.environ.get(IDLE_ENV) or IDLE_SECONDS))
    except ValueError:
        return str(IDLE_SECONDS)  # a word where seconds belong: the default, not a warm process that never starts


def start(path: str) -> None:
    """Start a warm process for socket PATH, detached from this one (a session of its own,
    no terminal, its streams on /dev/null, no file of ours kept open: a caller reading our
    output to its end must not wait for it). Only where aipass-git is set up, and not
    while one holds the lock or one started less than START_SECONDS ago has not taken it
    yet (it imports for a moment first): commands racing at the first start do not each
    start a Python."""
    if len(path) > MAX_SOCKET_PATH or not os.path.isdir(os.path.dirname(path)):
        return
    lock = lock_of(path)
    try:
        found = os.stat(lock)
        # empty: a start's mark, the pid not written yet; else whoever holds it serves
        if (found.st_size == 0 and time.time() - found.st_mtime < START_SECONDS) or serving(path):
            return
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600))  # the mark
    except OSError:
        return
    argv = [sys.executable, "-P", "-m", "aipass_git.cli.warm", path, "--idle", _idle()]  # -P: see program.module_argv
    try:
        child = os.fork()
    except OSError:
        return
    if child:
        os.waitpid(child, 0)  # the middle process ends at once: nothing is left to reap
        return
    try:  # the middle process: a new session, then the warm process as its orphan
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, 65536)
            os.chdir("/")
            os.execv(sys.executable, argv)
    except BaseException:  # noqa: BLE001 - nothing to say it to: this command runs here regardless
        pass
    os._exit(0)


def streams() -> list[list[str | None]]:
    """The asker's text encodings of stdin, stdout and stderr (the warm process's were set
    by the locale it started in)."""
    return [[getattr(s, "encoding", None), getattr(s, "errors", None)] for s in (sys.stdin, sys.stdout, sys.stderr)]


def run(argv: list[str]) -> int | None:
    """Run ARGV in the warm process and return its exit code, or None when it was not
    run there (then the caller runs it; a warm process is started for the next one)."""
    word = next((a for a in argv if not a.startswith("-")), None)  # the command, past --debug and kin
    if os.environ.get(OFF_ENV) or word in NOT_HANDED:
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    common = common_dir_of(cwd)
    if common is None:
        return None
    path = socket_in(common)
    if len(path) > MAX_SOCKET_PATH:
        return None
    if not os.path.exists(path):
        start(path)
        return None
    import socket  # deferred: a command with no warm process to hand it to need not import it

    umask = os.umask(0o22)
    os.umask(umask)
    request = {"argv": argv, "argv0": sys.argv[0] if sys.argv else "git-aipass", "cwd": cwd,
               "env": dict(os.environ), "umask": umask, "streams": streams(), **identity()}
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        socket.send_fds(conn, [json.dumps(request).encode("utf-8", "surrogateescape") + b"\n"], [0, 1, 2])
        lines = _Lines(conn)
        reply = lines.next()
    except ConnectionRefusedError:  # a socket nobody listens on: its process was killed
        conn.close()
        start(path)
        return None
    except OSError:  # a closed stdin, the warm process going away
        conn.close()
        return None
    if reply != STARTED:
        conn.close()
        if not reply:
            start(path)  # it left (the code changed since it started): a fresh one for the next
        return None  # another installation said no, or it left
    with conn:
        return _wait(conn, lines)


class _Lines:
    """The warm side's lines, one at a time: a quick command's `started` and `exit N` can
    come in one read, and the second must not be taken for part of the first (the command
    would then run here a second time)."""

    def __init__(self, conn) -> None:
        self.conn, self.buffer = conn, b""

    def next(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(256)
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def _wait(conn, lines: _Lines) -> int:
    """The command's exit code, relaying our signals to it until then."""
    relayed: list[int] = []

    def relay(signum: int, _frame) -> None:
        relayed.append(signum)
        try:
            conn.sendall(bytes([signum]))
        except OSError:
            pass  # it ended meanwhile; its exit code is on the way

    for signum in RELAYED:
        signal.signal(signum, relay)
    try:
        ended = lines.next()
    except OSError:
        ended = b""
    if ended.startswith(b"exit "):
        return int(ended.split()[1])
    if relayed:
        return 128 + relayed[-1]  # it died of the signal we passed on, as a shell reports it
    sys.stderr.write("error: the command ended without an exit code (aipass-git's warm process was stopped)\n")
    return 1
