"""The program: `git aipass`, `git-aipass` and `python -m aipass_git`.

A command goes to the repository's warm process when one listens (core/handoff.py: a few
milliseconds instead of Python's start and the command line's imports), else it runs here
and starts one for the next command.
"""

import sys

from aipass_git.core import handoff


def main() -> int:
    code = handoff.run(sys.argv[1:])
    if code is None:
        from aipass_git.cli.main import main as run_here  # deferred: typer and click, only when run here

        code = run_here()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
