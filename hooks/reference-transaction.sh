#!/bin/sh
# aipass-git hook shim: reference-transaction (installed by `git aipass hooks install`,
# removed by `git aipass hooks uninstall`). It runs on every ref update (a plain fetch: once
# per ref), so it decides in the shell whether there is anything to do. Python starts only
# for a committed update, not written by aipass itself, of a mailbox ref, or of a fetched
# mailbox whose new commits (those no local mailbox holds) deliver a dispatch.
@FIND_AIPASS@
input=$(cat)
chained="$(dirname "$0")/reference-transaction.aipass-chained"
if [ -x "$chained" ]; then
    printf '%s\n' "$input" | "$chained" "$@" || exit $?
fi
[ "$1" = committed ] || exit 0
[ -z "$AIPASS_TOOL_WRITE" ] || exit 0
case "$input" in
    *" refs/aipass/mail/"*) ;;
    *" refs/aipass-sync/"*/mail/*)
        revs=
        while read -r old new ref; do
            case "$ref" in refs/aipass-sync/*/mail/*) ;; *) continue ;; esac
            case "$new" in *[!0]*) revs="$revs $new" ;; esac
        done <<END
$input
END
        [ -n "$revs" ] || exit 0
        # shellcheck disable=SC2086 # one word per commit id
        git log --format='%(trailers:key=Aipass-Kind,valueonly)' $revs --not --glob='refs/aipass/mail/*' -- 2>/dev/null \
            | grep -qx dispatch || exit 0 ;;
    *) exit 0 ;;
esac
printf '%s\n' "$input" | aipass hook reference-transaction "$@"
exit 0
