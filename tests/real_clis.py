"""The real agent CLIs (claude, codex, gemini) for tests that run them against tests/mock_apis.

The CLIs come from npm at the exact versions pinned in tests/agent-clis/ and live in a
cache folder outside the source tree's tracked files: env AIPASS_CLI_CACHE, by default
<repo>/.cache/agent-clis. `skip_reason()` installs them there once when they are missing
and npm is available, and otherwise says why tests that need them must skip.

`prepare()` points one CLI at a mock: environment variables, plus config files written
under the isolated HOME it is given. It turns off what a CLI would send elsewhere
(telemetry, update checks, plugin sync from github.com): none of it can reach anything
here, and a test has no business sending it. With those settings the three CLIs made no
DNS lookup at all (checked with strace).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
PINNED = Path(__file__).resolve().parent / "agent-clis"
KINDS = ("claude", "codex", "gemini")
VENDOR = {"claude": "anthropic", "codex": "openai", "gemini": "gemini"}
INSTALL_TIMEOUT = 900

# Prompts go on stdin: Linux caps one argv string at 128 KiB. gemini reads stdin without -p
# when it is not a terminal; its stream-json prints an init line at start, where json
# prints one document at the very end. codex needs --skip-git-repo-check only outside a
# git repository (not even there with the bypass flag, in 0.171).
COMMANDS = {
    "claude": ["-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions"],
    "codex": ["exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "-c", "allow_login_shell=false",
              "--skip-git-repo-check", "-"],
    "gemini": ["--output-format", "stream-json", "--approval-mode=yolo", "--skip-trust"],
}


def cache_dir() -> Path:
    return Path(os.environ.get("AIPASS_CLI_CACHE") or REPO / ".cache" / "agent-clis")


def cli_path(kind: str) -> Path:
    return cache_dir() / "node_modules" / ".bin" / kind


def command(kind: str) -> list[str]:
    """The argv that runs KIND headless with full permissions; the prompt goes on stdin."""
    return [str(cli_path(kind)), *COMMANDS[kind]]


def _pinned_versions() -> dict[str, str]:
    return json.loads((PINNED / "package.json").read_text(encoding="utf-8"))["dependencies"]


def _installed() -> bool:
    modules = cache_dir() / "node_modules"
    for package, version in _pinned_versions().items():
        try:
            found = json.loads((modules / package / "package.json").read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError):
            return False
        if found != version:
            return False
    return all(cli_path(kind).exists() for kind in KINDS)


@functools.cache
def skip_reason() -> str | None:
    """None when all three CLIs are ready to run, else why tests that need them skip."""
    if shutil.which("node") is None:
        return "node is not installed: the agent CLIs need Node.js 18 or newer"
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".install.lock"), timeout=INSTALL_TIMEOUT):
        if _installed():
            return None
        if shutil.which("npm") is None:
            return f"the agent CLIs are not in {cache} and npm is not installed to fetch them"
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PINNED / name, cache / name)
        try:
            proc = subprocess.run(["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund"],
                                  cwd=cache, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"npm install of the agent CLIs into {cache} took over {INSTALL_TIMEOUT} s"
        if proc.returncode != 0 or not _installed():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return f"npm install of the agent CLIs into {cache} failed: " + " | ".join(tail)
    return None


def prepare(kind: str, api_url: str, home: Path, *, retries: int | None = None) -> dict[str, str]:
    """Environment for running KIND against the mock at API_URL, with HOME as its home.

    Writes the CLI's config under HOME (never the real one) and returns variables to lay
    over the test's environment; an empty value blanks a variable that would otherwise
    steer the CLI elsewhere. `retries` sets how often the CLI itself retries a failed
    request (claude 10, codex 4 plus 5 stream reconnects, gemini 9, when left None).
    """
    home.mkdir(parents=True, exist_ok=True)
    # the CLIs' scratch files (claude's tool output, gemini's error reports) stay in HOME
    tmp = home / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {"HOME": str(home), "TMPDIR": str(tmp)}
    if kind == "claude":
        env |= {
            "ANTHROPIC_BASE_URL": api_url, "ANTHROPIC_API_KEY": "mock-key", "ANTHROPIC_AUTH_TOKEN": "",
            # claude refuses bypassPermissions as root outside a sandbox it knows of
            "IS_SANDBOX": "1",
            # claude sets these for the commands it runs: a test run from inside Claude
            # Code must not hand them on; and its config stays under HOME whatever was set
            "CLAUDECODE": "", "CLAUDE_CODE_SESSION_ID": "", "CLAUDE_CODE_CHILD_SESSION": "",
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
        }
        if retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
    elif kind == "codex":
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)
        retry_lines = "" if retries is None else f"request_max_retries = {retries}\nstream_max_retries = {retries}\n"
        # a model codex knows, so it does not warn about missing model metadata
        (codex_home / "config.toml").write_text(
            'model = "gpt-5.5"\nmodel_provider = "mock"\ncheck_for_update_on_startup = false\n\n'
            f'[model_providers.mock]\nname = "mock"\nbase_url = "{api_url}/v1"\n'
            f'env_key = "AIPASS_MOCK_API_KEY"\nwire_api = "responses"\n{retry_lines}\n'
            # plugins sync a catalogue from github.com at start
            "[features]\nplugins = false\n\n[analytics]\nenabled = false\n",
            encoding="utf-8")
        env |= {"CODEX_HOME": str(codex_home), "AIPASS_MOCK_API_KEY": "mock-key", "OPENAI_API_KEY": "",
                "OPENAI_BASE_URL": ""}
    elif kind == "gemini":
        settings: dict = {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
        }
        if retries is not None:
            settings["general"]["maxAttempts"] = retries + 1
        (home / ".gemini").mkdir(exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        env |= {
            "GOOGLE_GEMINI_BASE_URL": api_url, "GEMINI_API_KEY": "mock-key", "GOOGLE_API_KEY": "",
            "GOOGLE_GENAI_USE_VERTEXAI": "", "GOOGLE_CLOUD_PROJECT": "", "GEMINI_CLI_HOME": str(home),
            # without it gemini starts a second node process for a bigger heap: ~2 s more
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
    else:
        raise ValueError(f"unknown CLI {kind!r}; one of {KINDS}")
    return env

