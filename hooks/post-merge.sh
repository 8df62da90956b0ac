#!/bin/sh
# aipass-git hook shim: post-merge (installed by `git aipass hooks install`, removed by
# `git aipass hooks uninstall`). Python starts only when the merge changed agents' memory
# or archives; then the index refresh runs in the background.
@FIND_AIPASS@
chained="$(dirname "$0")/post-merge.aipass-chained"
if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi
git diff --quiet ORIG_HEAD HEAD -- .aipass/agents 2>/dev/null && exit 0
aipass hook post-merge "$@"
