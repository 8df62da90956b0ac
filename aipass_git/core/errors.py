"""The one exception family of aipass-git.

Every failure a user can cause or fix is an `AipassError`: a one-line message that names
the file, field or value, and a hint that says what to do next. The CLI prints them as
`error:` / `hint:` lines and exits with `exit_code`; nothing else is shown unless --debug.
"""

from __future__ import annotations

import errno
import signal


class AipassError(Exception):
    """A failure the user can act on. Exit code 1: the operation failed."""
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class RefusedError(AipassError):
    """Bad input or a request the tool will not carry out. Exit code 2; nothing written."""
    exit_code = 2


class NotARepositoryError(RefusedError):
    """The command needs a git repository with a working tree."""


class NotInitialisedError(RefusedError):
    """The repository has no `.aipass/config.yaml` yet."""


class InvalidNameError(RefusedError):
    """An agent name breaks the naming rules."""


class UnknownAgentError(RefusedError):
    """No agent of that name, or it is retired."""


class UnknownMessageError(RefusedError):
    """No message with that id (or prefix) where it was looked for."""


class ValidationError(RefusedError):
    """A stored document (config, passport, memory) breaks its schema."""
    def __init__(self, file: str, field: str | None, problem: str, hint: str | None = None) -> None:
        where = f"{file}: field '{field}'" if field else file
        super().__init__(f"{where}: {problem}", hint)
        self.file = file
        self.field = field
        self.problem = problem


class GitError(AipassError):
    """A git command failed in a way the tool did not expect."""
    def __init__(self, args: list[str], returncode: int, stderr: str, hint: str | None = None) -> None:
        detail = stderr.strip().splitlines()
        last = detail[-1] if detail else "no output"
        command = f"git {' '.join(args[:3])}{' ...' if len(args) > 3 else ''}"
        if returncode < 0:
            what, fix = signal_cause(-returncode)
            super().__init__(f"{command} was stopped by {what}", hint or fix)
        else:
            super().__init__(f"{command} failed (exit {returncode}): {last}", hint)
        self.args_ = args
        self.returncode = returncode
        self.stderr = stderr


def signal_cause(number: int) -> tuple[str, str]:
    """(what a signal that stopped git means, what to do) for an error message."""
    if number == signal.SIGXFSZ:
        return ("the file size limit (ulimit -f)", "raise the limit (ulimit -f unlimited) and run the command again")
    name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
    return (name, "run the command again; if it keeps failing, check the repository with: git fsck")


def from_os_error(exc: OSError) -> AipassError:
    """An operating-system failure while reading or writing, said in words with a fix."""
    where = f" ({exc.filename})" if exc.filename else ""
    causes = {
        errno.ENOSPC: ("the disk is full", "free some space, then run the command again"),
        errno.EDQUOT: ("the disk quota is used up", "free some space, then run the command again"),
        errno.EFBIG: ("a file size limit (ulimit -f) was reached", "raise the limit (ulimit -f unlimited) and retry"),
        errno.EROFS: ("the file system is read-only", "run the command where the repository can be written"),
        errno.EACCES: ("permission was denied", "check who owns the repository's files (and .git/objects)"),
        errno.EPERM: ("the operation is not permitted", "check who owns the repository's files (and .git/objects)"),
    }
    what, fix = causes.get(exc.errno, (exc.strerror or "the operating system refused", "check the path and retry"))
    return AipassError(f"{what}{where}", fix)