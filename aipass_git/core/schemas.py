"""The shape of every document aipass stores in the repository: config, passport, memory.

Format version 1 throughout (`"v": 1`); a reader refuses versions it does not know rather
than guessing.
"""

from __future__ import annotations

from aipass_git.core.ids import ID_PATTERN
from aipass_git.core.names import MAX_LENGTH
from aipass_git.core.validate import Const, Int, List, Map, Nullable, Num, Obj, Str

FORMAT_VERSION = 1

NAME = Str(pattern=r"[a-z][a-z0-9_-]*", max_len=MAX_LENGTH, expected="a valid agent name")
TIMESTAMP = Str(pattern=r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expected="a UTC time like 2026-01-31T12:00:00Z")
ENTRY_ID = Str(pattern=ID_PATTERN.pattern[:-2], expected="an aipass id (26 characters)")
# A git branch name: what check-ref-format accepts, minus the rare corners, checked without
# spawning git on every read.
BRANCH = Str(
    pattern=r"(?!/)(?!.*(?:\.\.|//|@\{|\.lock(?:/|$)|/$|\.$))[^\x00-\x20~^:?*\[\\\x7f]+",
    max_len=200,
    expected="a valid branch name",
)


def _relative_glob(text: str) -> bool:
    parts = text.split("/")
    return not text.startswith("/") and "\\" not in text and ".." not in parts and "\0" not in text


OWNED_GLOB = Str(max_len=300, one_line=True, test=_relative_glob, expected="a glob relative to the repository root")
MODEL = Str(max_len=100, pattern=r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*", expected="a model name")

SIGNING_KEY = Obj(
    required={"key": Str(pattern=r"ssh-ed25519 [A-Za-z0-9+/=]{68}", expected="an ssh-ed25519 public key line"),
              "from": TIMESTAMP},
    optional={"until": Nullable(TIMESTAMP)},
)
HUMAN_KEY = Obj(
    required={"v": Const(FORMAT_VERSION),
              "email": Str(max_len=200, one_line=True, pattern=r"[^\s<>]+@[^\s<>]+", expected="an email"),
              "name": Str(max_len=200, one_line=True),
              "key": SIGNING_KEY.required["key"], "from": TIMESTAMP},
    optional={"until": Nullable(TIMESTAMP)},
)
CLONE_NAME = Str(pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", max_len=63, expected="a clone name (git config aipass.clone)")
PASSPORT = Obj(
    required={
        "v": Const(FORMAT_VERSION),
        "name": NAME,
        "role": Str(max_len=300, one_line=True),
        "provider": Str(pattern=r"[a-z][a-z0-9_-]*", max_len=40, expected="a provider name"),
        "model": Nullable(MODEL),
        "owns": List(OWNED_GLOB, max_items=200, unique=True),
        "template": Str(pattern=r"[a-z][a-z0-9_-]*", max_len=40, expected="a template name"),
        "created": TIMESTAMP,
        "created_by": Str(max_len=200, one_line=True),
        "status": Str(choices=("active", "retired")),
        "retired": Nullable(TIMESTAMP),
    },
    optional={
        # the clone that runs the agent (its `aipass.clone` name); other clones only deliver
        "home": Nullable(CLONE_NAME),
        # the agent's public signing keys (agents/trust.py), the newest last
        "keys": List(SIGNING_KEY, max_items=100),
    },
)

MEMORY_ENTRY = Obj(
    required={"id": ENTRY_ID, "created": TIMESTAMP, "text": Str(max_len=25_000)},
    optional={
        "commit": Nullable(Str(pattern=r"[0-9a-f]{7,64}", expected="a commit id")),
        "paths": List(Str(max_len=500, one_line=True), max_items=100),
    },
)
MEMORY_SECTIONS = ("sessions", "learnings", "observations")  # as stored
MEMORY_SHOWN = ("learnings", "observations", "sessions")  # as people and prompts read them
MEMORY = Obj(
    required={"v": Const(FORMAT_VERSION), "agent": NAME, **{s: List(MEMORY_ENTRY) for s in MEMORY_SECTIONS}},
)

PROVIDER = Obj(
    required={"argv": List(Str(max_len=1000))},
    optional={
        "model_args": List(Str(max_len=1000)),
        "description": Str(max_len=300, one_line=True),
        # "prompt": the prompt goes to the CLI's standard input (no argv size limit)
        "stdin": Nullable(Str(choices=("prompt",))),
        # set for the CLI only, e.g. its API endpoint; never a secret committed by default
        "env": Map(Str(min_len=0, max_len=4000), key_pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
    },
)

# Settings added after format 1 was first written: optional, with these defaults, so a
# config written by an older aipass-git still loads unchanged.
TIMEOUT_DEFAULTS = {
    "stall_seconds": 1800,  # no output and no desk activity for this long: restarted
    "crash_retries": 1,  # restarts of a dispatch whose supervisor died, before a bounce
    "standards_seconds": 60,  # the project's own standards, all together, in one audit
}

CONFIG = Obj(
    required={
        "v": Const(FORMAT_VERSION),
        "orchestrator": NAME,
        "base_branch": BRANCH,
        "default_provider": Str(pattern=r"[a-z][a-z0-9_-]*", max_len=40, expected="a provider name"),
        "providers": Map(PROVIDER),
        "limits": Obj(
            required={
                "subject_max_chars": Int(min=1, max=1000),
                "body_max_bytes": Int(min=1, max=64 * 1024 * 1024),
                "memory_entries_per_section": Int(min=1, max=10_000),
                "memory_max_chars": Int(min=1000, max=10_000_000),
                "max_queued_wakes": Int(min=0, max=1000),
            },
            optional={"memory_entry_max_chars": Int(min=100, max=25_000)},
        ),
        "timeouts": Obj(
            required={
                "startup_seconds": Num(positive=True),
                "run_seconds": Num(positive=True),
                "retries": Int(min=0, max=20),
                "retry_backoff_seconds": Num(min=0),
                "rate_limit_backoff_seconds": Num(min=0),
                "merge_lock_seconds": Num(min=0),
                "git_seconds": Num(positive=True),
            },
            optional={"stall_seconds": Num(positive=True), "crash_retries": Int(min=0, max=20),
                      "standards_seconds": Num(positive=True)},
        ),
        "desks": Obj(required={"root": Nullable(Str(max_len=1000, one_line=True))}),
    },
    # signed: events without a valid signature by their speaker never wake, count or merge;
    # any: they are only flagged. Absent (a repository from before signing): any.
    optional={"trust": Str(choices=("signed", "any"))},
)


def empty_memory(agent: str) -> dict:
    """The working memory of a new agent."""
    return {"v": FORMAT_VERSION, "agent": agent, **{s: [] for s in MEMORY_SECTIONS}}
