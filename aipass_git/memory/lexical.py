"""The lexical half of memory search: a question in an agent's words turned into an FTS5 query.

Words are OR-ed (BM25 ranks entries by how many rare ones they share), not AND-ed: a
paraphrase seldom repeats every word of the entry it looks for. Words that say nothing
about the subject (the, when, does, ...) are left out, or every entry would match and the
ranking would come from them. The index stems with FTS5's porter tokenizer, so "fails",
"failing" and "failed" meet; a longer word also matches as a prefix ("config" finds
"configuration").
Words found in more than 0.5% of the entries are dropped (common_bound): OR-ed with them,
BM25 prefers an entry that shares several middling words with the question (its topic)
over the one that shares its rarest word (an error code, a file name), and the query reads
every entry they are in. The share is the dev half's best in `bench/memory.py --recall`.
The names a question mentions (names: a file, a flag, a variable, an error code, a number
with the word it counts) are asked for as phrases too: "retry-85.yaml" is rare where
"retry", "85" and "yaml" are not, and the same common_bound applies to a phrase as a whole.
Every pair of neighbouring words as a phrase was tried and lost: it rewards an entry that
repeats the question's wording of a topic, which its neighbours on other topics do as much.
"""

from __future__ import annotations

import re
from typing import Callable

# English function words and question words: what a question adds around its subject
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing done down during each few for from further had has have having he
her here hers him his how i if in into is it its itself just me more most my no nor not now of off on once
only or other our ours out over own same she should so some such than that the their theirs them then there
these they this those through to too under until up very was we were what whats when where which while who
whom why will with would you your yours also get gets got happen happens happened thing things anything
something again ever still way ways one ones us let lets may might must shall
""".split())

WORD = re.compile(r"\w+", re.UNICODE)
TOKEN = re.compile(r"[^\W_]+", re.UNICODE)  # a word as FTS5's unicode61 tokenizer cuts it (_ separates)
JOINED = re.compile(r"[^\W_]+(?:[-_.:/]+[^\W_]+)+", re.UNICODE)  # words joined without spaces: one name
FLAG_START = re.compile(r"(?:^|[^\w-])--?$")  # what precedes a command-line flag's name
RUN_BREAK = re.compile(r"[,;:()\[\]!?\"]|\.\s", re.UNICODE)  # no phrase spans a break in the sentence
PREFIX_MIN = 5  # shorter words as prefixes match too much ("log" would find "login", "logo")
COMMON_SHARE = 0.005  # a word in more than this share of the entries is left out of the query...
COMMON_FLOOR = 5  # ...when that is more than this many: in a tiny memory every word counts


def telling(word: str) -> bool:
    """Whether WORD may say something about a subject: no stopword, no lone letter."""
    return word not in STOPWORDS and (len(word) > 1 or word.isdigit())


def terms(query: str) -> list[str]:
    """The words of QUERY that carry its subject, lower-cased, in order, each once."""
    seen: dict[str, None] = {}
    for word in WORD.findall(query.lower()):
        word = word.strip("_")
        if word and telling(word):
            seen.setdefault(word, None)
    return list(seen)


def names(query: str) -> dict[str, str]:
    """What QUERY names: phrase -> the question's spelling of it, lower-cased, each once.
    A name is a word run joined by punctuation that is no plain hyphenated word
    (retry-85.yaml, LEGACY_LOCALE, --locale-verbose, but not "sign-in"), a word of letters
    and digits (E2914), or a number with a word beside it ("code 92"): a number alone says
    little, the word beside it says what it numbers. An entry about the same thing must
    contain the phrase; one that spells it alike (legacy_locale, not legacy-locale) more so."""
    seen: dict[str, str] = {}
    for joined in JOINED.finditer(query):
        text, words = joined.group().lower(), TOKEN.findall(joined.group().lower())
        flag = FLAG_START.search(query[:joined.start()]) is not None  # --dry-run, -x-y
        if (flag or any(c.isdigit() for c in text) or re.search(r"[_.:/]", text)) and max(map(len, words)) > 1:
            seen.setdefault(" ".join(words), text)  # (no "e.g.": all its words are letters)
    for run in RUN_BREAK.split(query.lower()):
        words = TOKEN.findall(run)
        for word in words:
            if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
                seen.setdefault(word, word)
        for first, second in zip(words, words[1:]):
            pair = f"{first} {second}"
            if (telling(first) and telling(second) and (first.isdigit() or second.isdigit())
                    and not any(f" {pair} " in f" {name} " for name in seen)):  # not part of a name found
                seen.setdefault(pair, pair)
    return seen


def naming(text: str, phrase: str, spelling: str) -> int:
    """How well TEXT names what PHRASE and SPELLING (from names) stand for: 2 spelled alike,
    1 the same words in another spelling (retry_85 for retry-85), 0 not at all."""
    lowered = text.lower()
    if re.search(r"(?<![^\W_])" + re.escape(spelling) + r"(?![^\W_])", lowered):
        return 2
    return int(bool(re.search(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, phrase.split())) + r"(?![^\W_])", lowered)))


def term_expression(term: str) -> str:
    """A word (a prefix too, when long) or a phrase (words separated by spaces)."""
    quoted = '"' + term.replace('"', '""') + '"'
    return f"{quoted}*" if len(term) >= PREFIX_MIN and " " not in term else quoted


def common_bound(entries: int) -> int:
    """How many entries a word may be in and still be asked for: above it a word says little
    (BM25 gives it almost no weight) and costs much (FTS5 walks every entry it is in)."""
    return max(COMMON_FLOOR, int(entries * COMMON_SHARE))


def match_expression(query: str, keep: Callable[[str], bool] | None = None, *, all_common: bool = True) -> str:
    """An FTS5 MATCH expression for QUERY (empty when it has no words worth matching);
    KEEP, when given, says which terms to ask for, unless it would leave none: then all of
    them, or none without ALL_COMMON."""
    chosen = terms(query)
    # a name with underscores is a term already (FTS5 reads "lc_all" as the phrase "lc all")
    chosen += [p for p in names(query) if p not in chosen and p.replace(" ", "_") not in chosen]
    if keep is not None:
        chosen = [t for t in chosen if keep(t)] or (chosen if all_common else [])
    parts = []
    for term in chosen:
        parts.append(term_expression(term))
    return " OR ".join(parts)
