"""Text that crosses a boundary: what a one-line field may hold, what reaches a terminal,
and words for counts.

One-line fields (subjects, titles, roles) refuse characters that change how text is
shown: C0 and C1 controls (ANSI escapes start with ESC), bidirectional overrides and
isolates (a "Trojan source" reorders what is read), zero-width and other invisible format
characters (two names that look the same), line and paragraph separators, and lone
surrogates (bytes that were not UTF-8). Bodies keep them, and
everything printed for a person goes through `for_terminal`, which shows them instead
of letting them act.
"""

from __future__ import annotations

import unicodedata

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
INVISIBLE = set("\u200b\u200c\u200d\u2060\ufeff\u180e")


def _unsafe(ch: str, *, allow_newlines: bool) -> bool:
    code = ord(ch)
    if ch in "\n\t" and allow_newlines:
        return False
    if code < 32 or 127 <= code < 160 or ch in BIDI or ch in INVISIBLE or 0xD800 <= code <= 0xDFFF:
        return True
    # the rest of Unicode's format characters (soft hyphen, invisible operators, tags: none
    # shows) and its line and paragraph separators (U+2028 breaks a line where it shows)
    return code > 160 and unicodedata.category(ch) in ("Cf", "Zl", "Zp")


def describe(ch: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)` for an error message."""
    name = unicodedata.name(ch, "") or ("control character" if ord(ch) < 160 else "surrogate: not UTF-8")
    return f"U+{ord(ch):04X} ({name})"


def first_unsafe(text: str, *, allow_newlines: bool = False) -> str | None:
    """The first character of TEXT that would change how it shows, or None."""
    return next((ch for ch in text if _unsafe(ch, allow_newlines=allow_newlines)), None)


def is_utf8(text: str) -> bool:
    """Whether TEXT came from valid UTF-8: no lone surrogate (what an undecodable byte of
    the command line or a file becomes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def for_terminal(text: str) -> str:
    """TEXT as a terminal can show it safely: controls, bidi and invisible characters
    written out (`\\x1b`, `<U+202E>`); line breaks and tabs kept."""
    if first_unsafe(text, allow_newlines=True) is None:
        return text
    out = []
    for ch in text:
        if not _unsafe(ch, allow_newlines=True):
            out.append(ch)
        elif ord(ch) < 256:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"<U+{ord(ch):04X}>")
    return "".join(out)


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 commit`, `2 commits` (MANY for irregular plurals)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def article(phrase: str) -> str:
    """`an AWS access key`, `a GitHub token`: the article by the sound of the first letter."""
    return f"{'an' if phrase[:1].upper() in 'AEIOU' else 'a'} {phrase}"
