#!/bin/sh
# aipass-git hook shim: post-commit (installed by `git aipass hooks install`, removed by
# `git aipass hooks uninstall`). Python starts only after a commit on an agent's desk
# branch, and then in the background: the early conflict check (git aipass conflicts
# --tell) must never hold up a commit.
@FIND_AIPASS@
chained="$(dirname "$0")/post-commit.aipass-chained"
if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi
case "$(git symbolic-ref -q HEAD 2>/dev/null)" in
    refs/heads/aipass/*) aipass hook post-commit "$@" </dev/null >/dev/null 2>&1 ;;
esac
exit 0
