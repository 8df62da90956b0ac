"""What each git hook does, by name: the one entry point the shims reach through
`git aipass hook NAME ARGS`, so that the command line only passes git's arguments and
standard input along and prints what comes back."""

from __future__ import annotations

from aipass_git.core.program import run_detached
from aipass_git.core.repo import Repo

REFUSING = {"pre-commit": "commit", "commit-msg": "commit", "pre-push": "push"}  # hooks whose problems stop git


def run(repo: Repo, name: str, args: list[str], stdin: str) -> list[str]:
    """Run hook NAME; returns the reasons to refuse (only pre-commit and pre-push refuse)."""
    # each hook imports only what it runs: a commit waits for its hook
    if name == "pre-commit":
        from aipass_git.hooks import guard  # deferred: see above

        return guard.pre_commit(repo)
    if name == "commit-msg":
        from aipass_git.hooks import guard  # deferred: see above

        return guard.commit_msg(repo, args[0] if args else "")
    if name == "pre-push":
        from aipass_git.hooks import guard  # deferred: see above

        updates = [tuple(line.split()) for line in stdin.splitlines() if len(line.split()) == 4]
        return guard.pre_push(repo, updates)  # type: ignore[arg-type]
    from aipass_git.hooks import events  # deferred: see above (it loads the dispatch code)

    if name == "post-commit":
        # a commit on a desk: are two live desks converging on the same lines? (detached:
        # merge-tree over every live desk pair is seconds, the commit is done already)
        run_detached(repo.root, "conflicts", "--tell", "--quiet")
        return []
    if name in ("post-merge", "post-checkout"):
        if name == "post-merge":
            events.commit_overflow_in_background(repo)
        # post-merge: what the merge changed; post-checkout: git passes the old and new HEAD
        old, new = ("ORIG_HEAD", "HEAD") if name == "post-merge" else ((args + ["", ""])[0], (args + ["", ""])[1])
        if events.archives_changed(repo, old, new):
            events.refresh_index_in_background(repo)
    elif name == "reference-transaction" and args[:1] == ["committed"]:
        events.wake_on_mail(repo, stdin.splitlines())
    elif name == "reference-transaction" and args[:1] == ["fetched"]:
        # not a state git passes: the shim's look after a fetch that brought a dispatch
        events.wake_on_fetch(repo)
    return []
