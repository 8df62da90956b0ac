"""Provider command lines: argument lists from the config, placeholders filled in.

Never a shell string: each placeholder fills exactly one argument, so nothing in a prompt
or a path can become a shell command.
"""

from __future__ import annotations

import os
import re
import shutil

from aipass_git.core.config import Config
from aipass_git.core.errors import RefusedError

PLACEHOLDERS = ("prompt", "prompt_file", "model", "workdir", "agent")
_FIELD = re.compile(r"\{([^{}]*)\}")
CONFIG_HINT = "fix providers: in .aipass/config.yaml (each provider is an argv list; see its comments)"


def check(config: Config, provider: str, model: str | None) -> list[str]:
    """The provider's argv template (with model args), refusing unknown names and placeholders."""
    spec = config.providers.get(provider)
    if spec is None:
        raise RefusedError(f"provider {provider!r} is not configured", CONFIG_HINT)
    template = list(spec["argv"])
    if not template:
        raise RefusedError(
            f"provider {provider!r} has an empty argv",
            f"set providers.{provider}.argv in .aipass/config.yaml to the command to run",
        )
    if model:
        template += list(spec.get("model_args", []))
    for arg in template:
        for name in _FIELD.findall(arg):
            if name not in PLACEHOLDERS:
                raise RefusedError(
                    f"provider {provider!r}: unknown placeholder {{{name}}} in {arg!r}",
                    f"placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
                )
    return template


def render(template: list[str], values: dict[str, str]) -> list[str]:
    return [_FIELD.sub(lambda m: values[m.group(1)], arg) for arg in template]


def find_binary(argv0: str, path: str | None = None) -> str | None:
    """Where ARGV0 would be run from, or None when it is missing (checked before a wake)."""
    if os.sep in argv0:
        return argv0 if os.access(argv0, os.X_OK) else None
    return shutil.which(argv0, path=path)
