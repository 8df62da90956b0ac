"""The warm process: the command line imported once, a fork per command.

`python -m aipass_git.cli.warm SOCKET [--idle SECONDS]` imports the command line and every
command module (typer builds them once), then waits on SOCKET; a command that found no
warm process started it (core/handoff.py). One per repository: it holds SOCKET.lock
locked while it serves, and a second one leaves at once. Each asker gets a fork: a process
with everything imported that becomes the asker's command: its files on 0, 1 and 2, its
folder, environment, umask and argv, a session of its own (so that a fault point's process
group is its own). The fork says `started`, runs the command as main.py does for a new
process, and says `exit N`. The warm process itself runs nothing but accept and fork, in
one thread, so forking it is safe; it leaves after SECONDS without a command, when the
code on disk changed since it started (the next command starts a fresh one), or on TERM.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

import typer

from aipass_git.cli import app as app_mod
from aipass_git.cli.main import app, main
from aipass_git.core import handoff, program

ACCEPT_SECONDS = 0.5  # how often it looks at the clock when no command comes
REQUEST_BYTES = 1 << 20  # argv and environment; more is refused
RELAYED = {int(signum) for signum in handoff.RELAYED}


def command(common_dir: Path, idle: float | None = None) -> list[str]:
    """The argv that starts the warm process for the repository of COMMON_DIR (as
    handoff.start words it), leaving after IDLE seconds without a command (None: never)."""
    return [*program.module_argv("aipass_git.cli.warm"), handoff.socket_in(str(common_dir)),
            *(["--idle", str(idle)] if idle is not None else [])]


def code_stamp() -> tuple[int, int]:
    """(files, newest mtime) of the package's modules: an edit or an upgrade changes it."""
    count, newest = 0, 0
    for folder, dirs, files in os.walk(handoff.PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                count += 1
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return count, newest


def warm_up() -> None:
    """Import every command's module and build its typer group, once for all forks."""
    typer.main.get_command(app)
    for module, _summary in set(app_mod.COMMANDS.values()):
        app_mod._module_group(module)
    # what is imported now lives as long as the forks: the collector need not walk it in
    # each of them (walking it writes to every object, which copies the pages it shares)
    gc.freeze()


def _hold(path: str) -> int | None:
    """The lock of socket PATH taken, with our pid in it; None when another holds it."""
    fd = os.open(handoff.lock_of(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def serve(path: str, idle: float | None = None) -> None:
    if len(path) > handoff.MAX_SOCKET_PATH:
        return  # the asker would not look for it there either
    held = _hold(path)
    if held is None:
        return  # another warm process serves this repository
    warm_up()
    stamp = code_stamp()
    Path(path).unlink(missing_ok=True)  # left by a warm process that was killed
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)  # before it listens: nobody else connects
    bound = os.stat(path).st_ino
    server.listen(64)
    server.settimeout(ACCEPT_SECONDS)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the forks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C where it was started is not for it
    last, server_pid = time.monotonic(), os.getpid()
    try:
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                if idle is not None and time.monotonic() - last >= idle:
                    return
                continue
            last = time.monotonic()
            if code_stamp() != stamp:
                conn.close()  # the asker runs it itself and starts a fresh warm process
                return
            try:
                child = os.fork()
            except OSError:  # out of processes for now: this asker runs it itself
                conn.close()
                continue
            if child == 0:
                os.close(held)  # a command that runs long must not keep the lock past its server
                _child(server, conn)
            conn.close()
    finally:
        if os.getpid() != server_pid:
            os._exit(1)  # a fork that a signal caught before it became the command: not its socket
        try:
            if os.stat(path).st_ino == bound:
                os.unlink(path)
        except OSError:
            pass
        os.close(held)  # the lock goes last: a successor binds only once the socket is gone


def _child(server: socket.socket, conn: socket.socket) -> None:
    """The fork's whole life: it never returns into the accept loop."""
    code = 1
    try:
        server.close()
        code = _become(conn)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - said on the asker's stderr, then the fork ends
        traceback.print_exc()
    finally:
        os._exit(code)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds = b"", []
    while not data.endswith(b"\n"):
        chunk, more, _flags, _addr = socket.recv_fds(conn, 65536, 3)
        if not chunk:
            break
        data += chunk
        fds += more
        if len(data) > REQUEST_BYTES:
            raise ValueError("request too long")
    return json.loads(data.decode("utf-8", "surrogateescape")), fds


def _become(conn: socket.socket) -> int:
    """In the fork: become the asker's command and run it; returns the exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own children are waited for, as anywhere
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    try:
        conn.settimeout(5.0)
        request, fds = _receive(conn)
        conn.settimeout(None)
        mine = handoff.identity()
        if len(fds) != 3 or any(request.get(key) != value for key, value in mine.items()):
            conn.sendall(b"no\n")
            return 0
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        os.umask(int(request["umask"]))
        sys.argv = [request["argv0"], *request["argv"]]
        # new stream objects: the old ones cached what their first file was (seekable /dev/null)
        (ein, rin), (eout, rout), (eerr, rerr) = request["streams"]
        sys.stdin = open(0, encoding=ein or "utf-8", errors=rin, closefd=False)
        sys.stdout = open(1, "w", encoding=eout or "utf-8", errors=rout, closefd=False,
                          buffering=1 if os.isatty(1) else -1)
        sys.stderr = open(2, "w", encoding=eerr or "utf-8", errors=rerr, closefd=False, buffering=1)
        conn.sendall(handoff.STARTED)
    except (OSError, ValueError, KeyError, TypeError):
        return 1  # the asker sees no `started` and runs the command itself
    done = threading.Event()
    threading.Thread(target=_relay, args=(conn, done), daemon=True).start()
    code = main(list(request["argv"]))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that left, or a stream main.py closed after a broken pipe
    done.set()
    try:
        conn.sendall(f"exit {code}\n".encode())
    except OSError:
        pass
    return code


def _relay(conn: socket.socket, done: threading.Event) -> None:
    """Signals the asker got, raised here; the asker gone is a hang-up."""
    while True:
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if done.is_set():
            return
        if not data:
            os.kill(os.getpid(), signal.SIGHUP)
            return
        for signum in data:
            if signum in RELAYED:
                os.kill(os.getpid(), signum)


def serve_argv(argv: list[str]) -> None:
    """`SOCKET [--idle SECONDS]`, as command() and handoff.start word it."""
    idle = float(argv[argv.index("--idle") + 1]) if "--idle" in argv else None
    serve(argv[0], idle)


if __name__ == "__main__":
    serve_argv(sys.argv[1:])
