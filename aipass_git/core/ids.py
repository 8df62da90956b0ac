"""Identifiers that sort by creation time and never collide: ULID-style, never counters.

48 bits of milliseconds then 80 random bits, in Crockford base32 (26 characters, lower
case so they read well in refs and paths).
"""

from __future__ import annotations

import os
import re
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_PATTERN = re.compile(r"[0-9a-hjkmnp-tv-z]{26}\Z")


def new_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_id(text: str) -> bool:
    return bool(ID_PATTERN.match(text))


def timestamp_ms(ident: str) -> int:
    """The creation time (ms since the epoch) an id carries."""
    value = 0
    for ch in ident[:10]:
        value = value * 32 + ALPHABET.index(ch)
    return value
