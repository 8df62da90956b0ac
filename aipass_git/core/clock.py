"""Timestamps as stored: UTC, ISO 8601, second precision, `Z` suffix."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(stamp: str) -> datetime:
    """Read a stored timestamp back; raises ValueError when it is not one."""
    if not stamp.endswith("Z"):
        raise ValueError(stamp)
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
