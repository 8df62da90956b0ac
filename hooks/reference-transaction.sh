#!/bin/sh
# aipass-git hook shim: reference-transaction (installed by `git aipass hooks install`,
# removed by `git aipass hooks uninstall`). It runs on every ref update, and a plain fetch
# updates each ref in a transaction of its own, so it decides with shell builtins only:
# - a mailbox ref written by something other than aipass: Python looks at once;
# - a branch moved while .aipass/triggers.yaml exists: a triggers sweep in the background;
# - a fetched mailbox (refs/aipass-sync/<remote>/mail/*): the first transaction of this
#   fetch starts one background look that waits for the fetch to end, runs one `git log`
#   over the fetched commits no local mailbox holds, and starts Python only when one of
#   them delivers a dispatch (marker: aipass-fetch-<pid of the fetch>, beside this file).
chained="${0%/*}/reference-transaction.aipass-chained"
# most calls end here, before reading their input (git ignores the closed pipe): the
# "prepared" half of every transaction, and aipass's own writes
if [ ! -x "$chained" ] && { [ "$1" != committed ] || [ -n "$AIPASS_TOOL_WRITE" ]; }; then
    exit 0
fi
# builtins only: `$(cat)` would start a process for every ref of a fetch
input=
while IFS= read -r line; do input="$input$line
"; done
if [ -x "$chained" ]; then
    printf '%s' "$input" | "$chained" "$@" || exit $?
fi
[ "$1" = committed ] || exit 0
[ -z "$AIPASS_TOOL_WRITE" ] || exit 0
@FIND_AIPASS@
# a commit with rules in place: a triggers sweep, in the background (commit rules)
if [ -f .aipass/triggers.yaml ]; then
    case "$input" in
        *" refs/heads/"*) (aipass triggers sweep --quiet) </dev/null >/dev/null 2>&1 & ;;
    esac
fi
case "$input" in
    *" refs/aipass/mail/"*)
        printf '%s' "$input" | aipass hook reference-transaction "$@"
        exit 0 ;;
    *" refs/aipass-sync/"*/mail/*) ;;
    *) exit 0 ;;
esac
marker="${0%/*}/aipass-fetch-$PPID"
[ ! -e "$marker" ] || exit 0
( set -C; : > "$marker" ) 2>/dev/null || exit 0
fetch=$PPID
(
    while kill -0 "$fetch" 2>/dev/null; do sleep 0.1; done
    if git log --format='%(trailers:key=Aipass-Kind,valueonly)' --glob='refs/aipass-sync/*/mail/*' \
            --not --glob='refs/aipass/mail/*' -- 2>/dev/null | grep -qx dispatch; then
        echo fetched | aipass hook reference-transaction fetched
    fi
    rm -f "$marker"
) </dev/null >/dev/null 2>&1 &
exit 0
