"""Provider command lines: argument lists from the config, placeholders filled in.

Never a shell string: each placeholder fills exactly one argument, so nothing in a prompt
or a path can become a shell command. The prompt itself is best given on standard input
(`stdin: prompt`): one argument may hold at most 128 KiB on Linux, and none a NUL byte.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field

from aipass_git.core.config import Config
from aipass_git.core.errors import RefusedError
from aipass_git.dispatch.environment import search_path

PLACEHOLDERS = ("prompt", "prompt_file", "model", "workdir", "agent")
_FIELD = re.compile(r"\{([^{}]*)\}")
CONFIG_HINT = "fix providers: in .aipass/config.yaml (each provider is an argv list; see its comments)"
MAX_ARG_BYTES = 128 * 1024 - 1  # Linux's MAX_ARG_STRLEN, less the terminating NUL
# Claude Code exits at once when asked to skip permission prompts as root, unless told it
# runs in a sandbox by this variable: which only the user may decide to set.
CLAUDE_SANDBOX_ENV = "IS_SANDBOX"


@dataclass(frozen=True)
class Provider:
    name: str
    template: list[str]
    stdin_prompt: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        return self.template[0]


def check(config: Config, provider: str, model: str | None) -> Provider:
    """The provider's settings (argv with model args), refusing unknown names and placeholders."""
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
    return Provider(provider, template, spec.get("stdin") == "prompt", dict(spec.get("env") or {}))


def render(template: list[str], values: dict[str, str]) -> list[str]:
    """The argv with placeholders filled; refuses an argument the kernel would refuse."""
    argv = [_FIELD.sub(lambda m: values[m.group(1)], arg) for arg in template]
    for arg in argv:
        if "\0" in arg:
            raise RefusedError("an argument of the provider's command line holds a NUL byte",
                               "give the prompt on standard input: set `stdin: prompt` for the provider")
        size = len(arg.encode("utf-8", "surrogateescape"))
        if size > MAX_ARG_BYTES:
            raise RefusedError(
                f"an argument of the provider's command line is {size} bytes; one argument may hold "
                f"at most {MAX_ARG_BYTES} (the prompt is too big for {{prompt}})",
                "give the prompt on standard input (`stdin: prompt`) or as a file ({prompt_file})",
            )
    return argv


def find_binary(argv0: str, path: str | None = None) -> str | None:
    """Where ARGV0 would be run from, or None when it is missing (checked before a wake)."""
    if os.sep in argv0:
        return argv0 if os.access(argv0, os.X_OK) else None
    return shutil.which(argv0, path=path)


def refusal(provider: Provider) -> RefusedError | None:
    """Why this provider cannot run on this machine at all, found before a wake."""
    if os.name == "posix" and os.geteuid() == 0 and _skips_permissions_as_claude(provider) \
            and CLAUDE_SANDBOX_ENV not in provider.env and CLAUDE_SANDBOX_ENV not in os.environ:
        return RefusedError(
            f"provider {provider.name!r}: Claude Code refuses to skip permission prompts "
            "(bypassPermissions) when run as root, so every wake would fail",
            "run aipass-git as a normal user; or choose another --permission-mode in "
            f"providers.{provider.name}.argv; or, only inside a container or VM that is itself the "
            f"sandbox, add `env: {{{CLAUDE_SANDBOX_ENV}: \"1\"}}` to providers.{provider.name}",
        )
    return None


def _skips_permissions_as_claude(provider: Provider) -> bool:
    argv = provider.template
    if os.path.basename(argv[0]) != "claude":
        return False
    return "--dangerously-skip-permissions" in argv or "bypassPermissions" in argv \
        or "--permission-mode=bypassPermissions" in argv


def problems(config: Config, name: str) -> list[tuple[str, str, str]]:
    """What would go wrong when provider NAME wakes an agent here: (warn|error, what, hint).
    For `doctor`, and for `agent new` to warn at once. An agent nobody can wake yet is a
    warning; a rule that refuses every wake on this machine is an error."""

    try:
        provider = check(config, name, None)
    except RefusedError as exc:
        return [("warn", exc.message, exc.hint or CONFIG_HINT)]
    found: list[tuple[str, str, str]] = []
    refused = refusal(provider)
    if refused is not None:
        found.append(("error", refused.message, refused.hint or ""))
    if find_binary(provider.program, search_path()) is None:
        found.append(("warn", f"provider {name!r} runs {provider.program!r}, which is not on PATH",
                      f"install it, or change providers.{name}.argv; until then dispatches bounce"))
    if any("{prompt}" in arg for arg in provider.template):
        found.append(("warn", f"provider {name!r} passes the prompt as an argument: a prompt over 128 KiB cannot start",
                      f"set `stdin: prompt` for providers.{name} and drop \"{{prompt}}\" from its argv"))
    argv = provider.template
    if "--output-format" in argv and argv[argv.index("--output-format") + 1:][:1] == ["json"]:
        found.append(("warn", f"provider {name!r} prints its JSON only when it exits, so a session longer than "
                              "timeouts.startup_seconds is stopped as a failed start",
                      f"use --output-format stream-json in providers.{name}.argv (claude also needs --verbose)"))
    return found
