#!/bin/sh
# aipass-git hook shim: @HOOK@ (installed by `git aipass hooks install`,
# removed by `git aipass hooks uninstall`). A hook that was here before is kept as
# @HOOK@.aipass-chained and runs first; if it fails, so does this hook.
@FIND_AIPASS@
input=
if [ "@STDIN@" = yes ]; then input=$(cat); fi
chained="$(dirname "$0")/@HOOK@.aipass-chained"
if [ -x "$chained" ]; then
    printf '%s' "$input" | "$chained" "$@" || exit $?
fi
# aipass's own commits of .aipass files were validated as they were written
[ "@HOOK@" = pre-commit ] && [ -n "$AIPASS_TOOL_COMMIT" ] && exit 0
printf '%s' "$input" | aipass hook @HOOK@ "$@"
