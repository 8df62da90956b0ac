#!/bin/sh
# aipass-git hook shim: reference-transaction (installed by `git aipass hooks install`,
# removed by `git aipass hooks uninstall`). It runs on every ref update, so it decides in
# the shell whether there is anything to do: only a committed transaction that touches a
# mailbox ref, not written by aipass itself, starts Python.
@FIND_AIPASS@
input=$(cat)
chained="$(dirname "$0")/reference-transaction.aipass-chained"
if [ -x "$chained" ]; then
    printf '%s\n' "$input" | "$chained" "$@" || exit $?
fi
[ "$1" = committed ] || exit 0
[ -z "$AIPASS_TOOL_WRITE" ] || exit 0
case "$input" in
    *" refs/aipass/mail/"*) printf '%s\n' "$input" | aipass hook reference-transaction "$@" ;;
esac
exit 0
