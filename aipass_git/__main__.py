"""`python -m aipass_git` runs the same program as `git aipass`."""

from aipass_git.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
