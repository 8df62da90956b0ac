#!/bin/sh
# aipass-git hook shim: post-checkout (installed by `git aipass hooks install`, removed by
# `git aipass hooks uninstall`). Python starts only when agents' memory or archives
# changed between the two commits; then the index refresh runs in the background.
@FIND_AIPASS@
chained="$(dirname "$0")/post-checkout.aipass-chained"
if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi
[ "$1" != "$2" ] || exit 0
git diff --quiet "$1" "$2" -- .aipass/agents 2>/dev/null && exit 0
aipass hook post-checkout "$@"
