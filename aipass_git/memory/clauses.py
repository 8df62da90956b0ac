"""A question split into its clauses, for ranking entries by how many of them they answer.

A note is usually a few facts joined by a connective: what broke, how, and under which
condition ("the importer hangs when a row is empty"). One embedding of the whole question
lets an entry that matches one part very well (the same component, every word of it) beat
the entry that matches every part loosely. Scoring each clause on its own and averaging
rewards the entry that covers all of them.
"""

from __future__ import annotations

import re

# connectives that start a condition or a cause, and punctuation between facts; English only,
# as the stopwords of lexical.py are
CONNECTIVES = ("when", "whenever", "if", "because", "after", "once", "as soon as", "and then", "while",
               "with", "since", "until", "before", "unless")
SPLIT = re.compile(r"\s*(?:[;,()\[\]]|\b(?:" + "|".join(c.replace(" ", r"\s+") for c in CONNECTIVES) + r")\b)\s*",
                   re.IGNORECASE)
WORD = re.compile(r"\w", re.UNICODE)


def split(query: str) -> list[str]:
    """The clauses of QUERY, in order; [QUERY] when it has only one."""
    parts = [part for part in SPLIT.split(query) if part and WORD.search(part)]
    return parts if len(parts) > 1 else [query]
