#!/bin/sh
# aipass-git hook shim: commit-msg (installed by `git aipass hooks install`, removed by
# `git aipass hooks uninstall`). Python starts only when the message has a word that
# every kind of credential aipass-git looks for contains (a superset: the check itself
# is in Python); most messages have none, and the commit does not wait.
@FIND_AIPASS@
chained="$(dirname "$0")/commit-msg.aipass-chained"
if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi
# aipass's own commits were validated as they were written, message included
[ -n "$AIPASS_TOOL_COMMIT" ] && exit 0
grep -qiE '@SECRET_WORDS@' "$1" || exit 0
aipass hook commit-msg "$@"
