"""`git aipass demo`: a throw-away repository that shows aipass-git at work.

Everything runs locally: no AI provider, no network. The demo repository gets its own git
identity and settings, so it works on a machine where git was never configured.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

from aipass_git.agents.registry import Registry
from aipass_git.agents.session import Session
from aipass_git.core import git, repo as repo_mod
from aipass_git.core.errors import RefusedError
from aipass_git.dispatch import dispatcher
from aipass_git.mail.postoffice import PostOffice
from aipass_git.memory import working
from aipass_git.prs.queue import MergeQueue
from aipass_git.setup.project_init import initialise

SEED_FILES = {
    "README.md": "# shop\n\nA tiny web shop, worked on by three agents and one human.\n",
    "src/api/app.py": 'def price(cents: int) -> str:\n    return f"{cents / 100:.2f} EUR"\n',
    "tests/test_app.py": "from src.api.app import price\n\n\ndef test_price():\n    assert price(250) == \"2.50 EUR\"\n",
    "docs/index.md": "# shop docs\n\nPrices are shown in euros.\n",
}

DEMO_AGENTS = [
    # name, template, role, owned globs
    ("api", "default", "builds the shop's HTTP API", ["src/api/**"]),
    ("docs", "default", "keeps the user documentation true to the code", ["docs/**", "README.md"]),
    ("quality", "reviewer", "reviews every change for tests and standards", ["tests/**"]),
]

LOCAL_AGENT_ARGV = '[python3, -m, aipass_git.dispatch.local_agent, "{prompt_file}"]'

LOCAL_GIT_CONFIG = {
    "user.name": "Demo Human",
    "user.email": "human@demo.invalid",
    "commit.gpgsign": "false",
}


@dataclass
class DemoResult:
    path: Path
    steps: list[str] = field(default_factory=list)
    agents: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    inbox: list[dict] = field(default_factory=list)
    mail_log: list[str] = field(default_factory=list)
    dispatch: dict = field(default_factory=dict)
    desk_commits: list[str] = field(default_factory=list)
    desk_files: list[str] = field(default_factory=list)
    on_step: Callable[[str], None] | None = None  # hears each step as it is done (a spinner)

    def step(self, text: str) -> None:
        self.steps.append(text)
        if self.on_step is not None:
            self.on_step(text)
    merges: list[dict] = field(default_factory=list)
    memory: dict = field(default_factory=dict)


def run(dest: Path | None = None, on_step: Callable[[str], None] | None = None) -> DemoResult:
    path = _prepare(dest)
    result = DemoResult(path, on_step=on_step)
    git.init_repo(path, "main")
    for key, value in LOCAL_GIT_CONFIG.items():
        git.config_set(path, key, value)
    # A global core.hooksPath of the user's must not run their hooks in the demo. Absolute:
    # a relative one is read from each worktree's top, where the desks have no hooks.
    git.config_set(path, "core.hooksPath", str(path / ".git" / "hooks"))
    for rel, text in SEED_FILES.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text, encoding="utf-8")
    git.commit_paths(path, ["."], "shop: first version", add=True)
    result.step(f"created a git repository with a small project in {path}")

    repo = repo_mod.discover(path)
    init = initialise(repo)
    result.step(f"git aipass init: config, orchestrator @{init.orchestrator}, .gitattributes (one commit)")
    _use_local_agent(repo)
    result.step("the `command` provider runs the built-in local agent (no AI provider, no network)")

    registry = Registry(repo)
    for name, template, role, owns in DEMO_AGENTS:
        registry.create(name, role=role, template=template, owns=owns, provider="command")
        result.step(f"git aipass agent new {name} --template {template} --owns {' '.join(owns)}")

    _exchange_mail(repo, result)
    _dispatch(repo, result)
    _merge(repo, result)

    result.agents = [a.passport for a in registry.all()]  # as `agent list --json` gives them
    result.log = git.commits(path, "HEAD")
    result.files = git.tracked_files(path, [".aipass", ".gitattributes"])
    return result


def _exchange_mail(repo, result: DemoResult) -> None:
    """The human asks @api for something; @api reads it and answers, all on mailbox refs."""
    with PostOffice(Session.of_human(repo)) as human:
        [task] = human.send(["@api"], "show prices with two decimals", "src/api/app.py: price(250) should read 2.50 EUR.")
    result.step(f"git aipass send @api ...    (the human asks; message {task['id'][:12]})")
    with PostOffice(Session.of_agent(repo, "api")) as api:
        api.read(task["id"])
        api.reply(task["id"], "Already the case: price() formats with two decimals. Test added to my notes.")
    result.step("@api: git aipass read, then git aipass reply  (each a commit on a mailbox ref)")
    result.mail_log = git.commits(repo.root, "refs/aipass/mail/api")


def _use_local_agent(repo) -> None:
    path = repo.config_path
    text = path.read_text(encoding="utf-8").replace("    argv: []", f"    argv: {LOCAL_AGENT_ARGV}", 1)
    path.write_text(text, encoding="utf-8")
    git.commit_paths(repo.root, [str(path)], "aipass: demo agents run the built-in local agent")


def _dispatch(repo, result: DemoResult) -> None:
    """Wake @docs with a task: its supervisor runs the local agent on its desk, which commits and replies."""
    sent = dispatcher.dispatch(repo, "docs", "document the price format", "Say in docs/ that prices show two decimals and EUR.")
    outcome = dispatcher.wait(repo, sent.message["id"], timeout=120)
    result.dispatch = {"id": sent.message["id"], **outcome}
    result.step(
        f"git aipass dispatch @docs \"document the price format\" ... --wait  -> {outcome['result']}: "
        "the local agent committed a note, recorded a learning, opened a PR and replied"
    )

    with PostOffice(Session.of_human(repo)) as human:
        result.inbox = human.inbox()
    result.desk_commits = git.commits(repo.root, "main..aipass/docs")
    result.desk_files = git.changed_files(repo.root, "main...aipass/docs")


def _merge(repo, result: DemoResult) -> None:
    """The human, standing in for the orchestrator, merges the queue: audited, then merged."""
    outcomes = MergeQueue(repo).merge_all()
    result.merges = [{"pr": o.pr, "result": o.result, "merge_commit": o.merge_commit} for o in outcomes]
    merged = [o for o in outcomes if o.result == "merged"]
    result.step(f"git aipass pr merge --all  -> {len(merged)} merged into main under the merge lock, after the audit")
    result.memory = working.load(repo.root, "docs")


def _prepare(dest: Path | None) -> Path:
    if dest is None:
        return Path(tempfile.mkdtemp(prefix="aipass-demo-")).resolve()
    dest = dest.resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RefusedError(f"{dest} exists and is not an empty folder", "give a new or empty folder, or omit --dir")
    dest.mkdir(parents=True, exist_ok=True)
    return dest
