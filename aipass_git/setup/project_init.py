"""`git aipass init`: set up aipass-git in a repository, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field

from aipass_git.agents import trust
from aipass_git.agents.registry import Registry
from aipass_git.core import config as config_mod, git, names
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import CONFIG_FILE, Repo
from aipass_git.store import remote
from aipass_git.store.keyring import Keyring, own_ssh_key
from aipass_git.store.worktree_commit import commit_files
from aipass_git.hooks import install as hook_shims
from aipass_git.memory import drivers

ATTRIBUTES_FILE = ".gitattributes"
ATTRIBUTES_BEGIN = "# >>> aipass-git (managed by `git aipass init`; edit outside this block)"
ATTRIBUTES_END = "# <<< aipass-git"
# JSON under .aipass is canonical with LF endings on every platform; memory.json gets the
# readable diff and the union merge registered by the memory drivers.
ATTRIBUTES_BLOCK = "\n".join(
    [
        ATTRIBUTES_BEGIN,
        ".aipass/**/*.json text eol=lf",
        ".aipass/**/*.jsonl text eol=lf",
        ".aipass/config.yaml text eol=lf",
        ".aipass/agents/*/memory.json diff=aipass-memory merge=aipass-memory",
        # generated from the passports and humans/: two clones adding keys add lines
        ".aipass/allowed_signers merge=union",
        ATTRIBUTES_END,
    ]
)


@dataclass
class InitResult:
    orchestrator: str
    base_branch: str
    commit: str | None = None
    files: list[str] = field(default_factory=list)
    drivers_installed: bool = False
    hooks_installed: list[str] = field(default_factory=list)
    hooks_skipped: str | None = None  # why the hooks were not installed
    remotes_set_up: list[str] = field(default_factory=list)  # remotes whose fetches now carry event refs

    @property
    def changed(self) -> bool:
        return bool(self.files) or self.drivers_installed or bool(self.hooks_installed) or bool(self.remotes_set_up)


def initialise(repo: Repo, *, orchestrator: str | None = None, hooks: bool = True) -> InitResult:
    """Write what is missing of config, orchestrator and attributes; commit it in one commit."""
    contents: dict[str, bytes] = {}
    if repo.config_path.is_file():
        config = config_mod.load(repo)  # an invalid config is reported, never overwritten
        if orchestrator is not None and names.normalize(orchestrator) != config.orchestrator:
            raise RefusedError(
                f"already set up with orchestrator {config.orchestrator!r}",
                f"to change it, edit 'orchestrator:' in {CONFIG_FILE} and create that agent",
            )
    else:
        chosen = names.normalize(orchestrator or config_mod.DEFAULT_ORCHESTRATOR)
        text = config_mod.render_default(chosen, _base_branch(repo))
        contents[CONFIG_FILE] = text.encode("utf-8")
        config = config_mod.parse(text)

    registry = Registry(repo)
    passports = {}
    if not (repo.agents_dir / config.orchestrator).exists():
        agent, files = registry.prepare(config.orchestrator, template="orchestrator", config=config)
        contents.update(files)
        passports[agent.name] = agent.passport
    else:
        registry.get(config.orchestrator)  # validates the existing passport
    # the allowed signers are regenerated whenever they differ from their sources (a
    # union merge of two clones' keys, a hand edit), so init also repairs them
    signers = trust.files_for(repo, passports, _human_key(repo))
    on_disk = repo.root / trust.SIGNERS_FILE
    if not on_disk.is_file() or on_disk.read_bytes() != signers[trust.SIGNERS_FILE] or len(signers) > 1:
        contents.update(signers)

    attributes = _attributes(repo)
    if attributes is not None:
        contents[ATTRIBUTES_FILE] = attributes

    # Files already right on disk but never committed (an interrupted run, a manual
    # copy) are committed too, so that a second init always leaves nothing to do.
    ours = [CONFIG_FILE, f".aipass/agents/{config.orchestrator}", ATTRIBUTES_FILE, trust.HUMANS_DIR, trust.SIGNERS_FILE]
    for path in git.status_paths(repo.root, ours):
        if path not in contents and (repo.root / path).is_file():
            contents[path] = (repo.root / path).read_bytes()


    result = InitResult(config.orchestrator, config.base_branch, files=sorted(contents))
    if not drivers.installed(repo):
        drivers.install(repo)  # repository config, not committed: nothing for the commit
        result.drivers_installed = True
    if hooks:
        result.hooks_skipped = hook_shims.shared_hooks_path(repo)
        if result.hooks_skipped is None and set(hook_shims.installed(repo)) != set(hook_shims.HOOKS):
            result.hooks_installed = hook_shims.install(repo)
    result.remotes_set_up = [name for name in remote.remotes(repo.root) if remote.set_up(repo.root, name)]
    remote.clone_name(repo.root)  # named now, so that it is there to read and change
    if git.config_get(repo.root, "gpg.ssh.allowedSignersFile") is None:
        # plain git then checks aipass's signatures (git log --show-signature, verify-commit);
        # relative, git reads it from the top of the work tree, so a moved folder still works
        git.config_set(repo.root, "gpg.ssh.allowedSignersFile", trust.SIGNERS_FILE)
    if contents:
        message = (
            "aipass: set up aipass-git\n\n"
            f"Orchestrator: {config.orchestrator}\nBase branch: {config.base_branch}\n\n"
            "Aipass-Event: init\n"
        )
        result.commit = commit_files(repo, contents, message)
        if result.commit is None:
            result.files = []
    return result


def _human_key(repo: Repo) -> dict | None:
    """A key file for the human of this clone, when they have no trusted key here yet
    (their own git SSH signing key if git has one, else a new one); None: nothing to add."""
    name, email = git.user_ident(repo.root)
    keyring = Keyring(repo.root)
    key = keyring.get(email) or own_ssh_key(repo.root)
    listed = {doc["key"] for doc in trust.read_human_keys(repo).values() if doc["email"] == email and not doc.get("until")}
    if key is not None and " ".join(key.public_line.split()[:2]) in listed:
        return None
    if key is None:
        key = keyring.create(email)
    path, doc = trust.human_key(email, name, key.public_line)
    return {path: doc}


def _base_branch(repo: Repo) -> str:
    branch = git.current_branch(repo.root)
    if branch:
        return branch
    return git.config_get(repo.root, "init.defaultBranch") or "main"


def _attributes(repo: Repo) -> bytes | None:
    """The new .gitattributes content, or None when our block is already there as written."""
    path = repo.root / ATTRIBUTES_FILE
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if ATTRIBUTES_BLOCK in current:
        return None
    lines = current.splitlines()
    if ATTRIBUTES_BEGIN in lines and ATTRIBUTES_END in lines:
        # An older or edited block of ours: replace it, keep everything around it.
        start, end = lines.index(ATTRIBUTES_BEGIN), lines.index(ATTRIBUTES_END)
        lines[start : end + 1] = ATTRIBUTES_BLOCK.splitlines()
        return ("\n".join(lines) + "\n").encode("utf-8")
    kept = current.rstrip("\n") + "\n\n" if current.strip() else ""
    return (kept + ATTRIBUTES_BLOCK + "\n").encode("utf-8")
