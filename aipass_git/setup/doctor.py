"""`git aipass doctor`: check that git, the config, the passports, hooks and refs are sound.

Each check reports ok, warn or error with a hint; the doctor never changes anything.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from aipass_git.agents.registry import Agent, Registry, agent_files
from aipass_git.audit.engine import Context, run
from aipass_git.audit.standards import refs
from aipass_git.core import clock, config as config_mod, files, git, names, repo as repo_mod
from aipass_git.core.errors import AipassError
from aipass_git.dispatch import providers
from aipass_git.hooks import install
from aipass_git.memory import drivers, working
from aipass_git.setup import leftovers
from aipass_git.setup.project_init import ATTRIBUTES_BLOCK, ATTRIBUTES_FILE
from aipass_git.sync import health
from aipass_git.agents.trust import SIGNERS_FILE
from aipass_git.store.keyring import own_ssh_key
from aipass_git.core.text import plural

MIN_GIT = (2, 38)  # `git merge-tree --write-tree`, used to merge PRs without a worktree


@dataclass
class Check:
    name: str
    status: str  # ok | warn | error
    detail: str
    hint: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def examine(cwd: Path | str | None = None) -> list[Check]:
    checks = [_git_version()]
    try:
        repo = repo_mod.discover(cwd)
    except AipassError as exc:
        return checks + [Check("repository", "error", exc.message, exc.hint)]
    checks.append(Check("repository", "ok", str(repo.root)))
    checks.append(_links(repo))
    try:
        config = config_mod.load(repo)
    except AipassError as exc:
        return checks + [Check("config", "error", exc.message, exc.hint)]
    checks.append(Check("config", "ok", f"{repo_mod.CONFIG_FILE} valid (orchestrator {config.orchestrator})"))
    found, agents = _agents(repo, config)
    checks.extend(found)
    checks.extend(_providers(config, agents))
    checks.append(_attributes(repo))
    checks.append(_drivers(repo))
    checks.append(_hooks(repo))
    checks.append(_refs(repo))
    checks.extend(_sync(repo))
    checks.append(_trust(repo, config))
    checks.append(_plans(repo))
    checks.append(_triggers(repo))
    checks.append(_housekeeping(repo))
    checks.extend(_leftovers(repo))
    return checks


def _git_version() -> Check:
    try:
        found = git.version()
    except AipassError as exc:
        return Check("git", "error", exc.message, exc.hint)
    shown = ".".join(map(str, found))
    if found[:2] < MIN_GIT:
        return Check(
            "git", "error", f"git {shown} is too old (need {'.'.join(map(str, MIN_GIT))} or newer)",
            "install a newer git: merging PRs uses `git merge-tree --write-tree`",
        )
    return Check("git", "ok", f"git {shown}")


def _links(repo: repo_mod.Repo) -> Check:
    found = files.links_under(repo.root, repo_mod.AIPASS_DIR)
    if not found:
        return Check("links", "ok", f"no symbolic links in {repo_mod.AIPASS_DIR}")
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return Check("links", "error", f"symbolic links in {repo_mod.AIPASS_DIR}, which aipass-git refuses to follow: {shown}",
                 "replace each with the real file or folder (git rm --cached the ones git tracks)")


def _agents(repo: repo_mod.Repo, config: config_mod.Config) -> tuple[list[Check], list[Agent]]:
    """The checks of every agent folder, and the agents whose passport and memory read well."""
    loaded = Registry(repo).each()
    checks: list[Check] = []
    agents: list[Agent] = []
    memory_errors = working.check_many(repo, [name for name, _ in loaded if names.is_valid(name)])
    for name, found in loaded:
        try:
            if not names.is_valid(name):
                names.normalize(name)  # raises with the reason
            if isinstance(found, AipassError):
                raise found
            if name in memory_errors:
                raise memory_errors[name]
            readme = agent_files(name)["readme"]
            if not os.path.isfile(f"{repo.root}/{readme}"):
                checks.append(Check(f"agent {name}", "warn", f"{readme} is missing", "the agent wakes without domain notes; restore or write it"))
            agents.append(found)
        except AipassError as exc:
            checks.append(Check(f"agent {name}", "error", exc.message, exc.hint))
    by_name = {name: found for name, found in loaded}
    if config.orchestrator not in by_name:
        checks.append(
            Check("orchestrator", "error", f"the orchestrator {config.orchestrator!r} has no passport", "run: git aipass init")
        )
    elif isinstance(by_name[config.orchestrator], Agent) and not by_name[config.orchestrator].active:
        checks.append(Check("orchestrator", "error", f"the orchestrator {config.orchestrator!r} is retired", f"name an active agent as orchestrator in {repo_mod.CONFIG_FILE}"))
    checks.insert(0, Check("passports", "ok" if len(agents) == len(loaded) else "error", f"{len(agents)} of {len(loaded)} agents valid"))
    return checks, agents


def _providers(config: config_mod.Config, agents: list[Agent]) -> list[Check]:
    """The providers that active AGENTS use: can each start here, and run long sessions?"""
    users: dict[str, list[str]] = {}
    for agent in agents:
        if agent.active:
            users.setdefault(agent.provider, []).append(f"@{agent.name}")
    checks = []
    for name, used_by in sorted(users.items()):
        found = providers.problems(config, name)
        for status, what, hint in found:
            checks.append(Check(f"provider {name}", status, f"{what} (used by {', '.join(used_by)})", hint))
        if not found:
            checks.append(Check(f"provider {name}", "ok", f"{config.providers[name]['argv'][0]} found (used by {', '.join(used_by)})"))
    return checks


def _attributes(repo: repo_mod.Repo) -> Check:
    path = repo.root / ATTRIBUTES_FILE
    if path.is_file() and ATTRIBUTES_BLOCK in path.read_text(encoding="utf-8", errors="replace"):
        return Check("gitattributes", "ok", f"{ATTRIBUTES_FILE} has the aipass entries")
    return Check("gitattributes", "warn", f"{ATTRIBUTES_FILE} lacks the aipass entries", "run: git aipass init")


def _drivers(repo: repo_mod.Repo) -> Check:
    if drivers.installed(repo):
        return Check("memory drivers", "ok", "memory.json diff and merge drivers registered")
    return Check(
        "memory drivers", "warn", "the memory.json diff and merge drivers are not registered in this clone",
        "run: git aipass init   (a fresh clone needs it once; without it memory.json merges line by line)",
    )


def _hooks(repo: repo_mod.Repo) -> Check:
    hooks_dir = install.hooks_dir(repo)
    ours = install.installed(repo, hooks_dir)
    shared = install.shared_hooks_path(repo)
    if shared is not None:
        # shims there (an older aipass-git put them there) would run in every repository
        return Check("hooks", "warn" if not ours else "error", shared, install.OWN_DIR_HINT)
    if ours:
        return Check("hooks", "ok", f"installed in {hooks_dir}: {', '.join(ours)}")
    return Check(
        "hooks", "warn", f"no aipass hooks in {hooks_dir}",
        "without them, mail fetched from a remote wakes no agent and commits are not audited",
    )


def _leftovers(repo: repo_mod.Repo) -> list[Check]:
    found = leftovers.find(repo)
    if not found:
        return [Check("leftovers", "ok", "no stale locks, interrupted writes or temporary files")]
    return [Check(f"leftover {item.kind}", "warn", f"{item.where}: {item.detail}",
                  "run: git aipass doctor --fix" if item.fixable else None) for item in found]


def _trust(repo: repo_mod.Repo, config: config_mod.Config) -> Check:
    from aipass_git.mail.verified import Trust  # deferred: doctor reads mail only here
    from aipass_git.store.verify import unproven_refs
    from aipass_git.store.events import EventStore

    with EventStore(repo) as store:
        trust = Trust(store, config)
        if not trust.active:
            return Check("signatures", "warn", f"no {SIGNERS_FILE} on {config.base_branch}: events are not signed",
                         "run: git aipass init (keys for you and the agents), and commit on the base branch")
        unproven = {owner: len(found) for owner, found in trust.unverified_all().items()}
        records = unproven_refs(store, trust.roster, refs.RECORDS)  # one git log; none when there are no records
        _, email = git.user_ident(repo.root)
        if not store.keys.has(email) and own_ssh_key(repo.root) is None:
            return Check("signatures", "warn", f"you ({email}) have no signing key in this clone",
                         "run: git aipass init (it makes one and commits its public key)")
    if unproven or records:
        said = []
        if unproven:
            shown = ", ".join(f"@{o} {n}" for o, n in sorted(unproven.items()))
            said.append(f"{plural(sum(unproven.values()), 'message')} not signed by their sender ({shown})")
        if records:
            said.append(f"{plural(len(records), 'PR/plan record')} not proven")
        return Check("signatures", "error" if trust.enforced else "warn", "; ".join(said),
                     "see: git aipass audit --only refs.signed-; do not act on them")
    return Check("signatures", "ok", f"every message and record signed by its speaker (trust: {config.trust})")


def _plans(repo: repo_mod.Repo) -> Check:
    """Plans that cannot go on by themselves: unreadable, or stuck (plans/plan.py)."""
    from aipass_git.plans import plan as plan_mod  # deferred: doctor reads plans only here
    from aipass_git.store.events import EventStore

    with EventStore(repo) as store:
        docs, unreadable = plan_mod.PlanBook(store).readable()
    problems, hints = [f"{plan_id[:12]}: {why}" for plan_id, why in unreadable.items()], []
    try:
        retired = {a.name for a in Registry(repo).all(include_retired=True) if not a.active} if docs else set()
    except AipassError:
        retired = set()  # a broken passport is the agents check's finding
    now = clock.parse(clock.utc_now())
    for doc in docs:
        found = plan_mod.stuck(doc, retired, now)
        problems += found
        if found:
            hints.append(f"git aipass plan show {doc['id'][:12]}")
    if not problems:
        return Check("plans", "ok", f"{plural(len(docs), 'plan')}, none stuck")
    return Check("plans", "warn", "; ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else ""),
                 hints[0] if hints else "see: git aipass plan list --all")


def _housekeeping(repo: repo_mod.Repo) -> Check:
    from aipass_git.store import housekeeping  # deferred: doctor counts packs only here

    packs, loose = housekeeping.counts(repo)
    due = housekeeping.overdue(repo)
    if due:
        return Check("housekeeping", "warn", f"overdue: {due}", "run: git aipass housekeeping (writes start it by themselves)")
    return Check("housekeeping", "ok", f"{plural(packs, 'pack')}, about {loose} loose objects")


def _triggers(repo: repo_mod.Repo) -> Check:
    """The rules load, and who fires them: the daemon, or the kicks of hooks and supervisors."""
    from aipass_git.triggers import rules  # deferred: doctor reads triggers only here

    try:
        found = rules.load(repo)
    except AipassError as exc:
        return Check("triggers", "error", exc.message, "fix it, then check with: git aipass triggers check")
    if not found.rules and found.inbox_hours is None and found.stale_hours is None:
        return Check("triggers", "ok", "no rules")
    from aipass_git.triggers import daemon  # deferred: ~20 ms, only when there are rules to fire

    running = daemon.holder(repo)
    who = f"the daemon (pid {running['pid']})" if running else "hooks and supervisors (no daemon)"
    return Check("triggers", "ok", f"{plural(len(found.rules), 'rule')}, fired by {who}")


def _sync(repo: repo_mod.Repo) -> list[Check]:
    checks = []
    for state in health.remote_states(repo):
        name = f"sync {state.remote}"
        if not state.set_up:
            checks.append(Check(name, "warn", f"fetches from {state.remote!r} do not bring mail and PRs (no refspec for refs/aipass/*)",
                                f"run: git aipass sync {state.remote}  (it sets the refspec up, once)"))
            continue
        parts = [f"{plural(n, 'event ref')} {what}" for n, what in (
            (state.only_here, "not on the remote"), (state.only_there, "fetched but not here"),
            (state.unpushed, "unpushed"), (state.behind, "behind"), (state.diverged, "diverged (sync merges them)"),
            (state.differ, "unpushed, behind or diverged")) if n]
        if parts:
            checks.append(Check(name, "warn", f"as last fetched from {state.remote!r}: " + "; ".join(parts),
                                f"run: git aipass sync {state.remote}"))
        else:
            checks.append(Check(name, "ok", f"event refs match {state.remote!r} as last fetched"))
    return checks


def _refs(repo: repo_mod.Repo) -> Check:
    ctx = Context(repo)
    findings = run(ctx, [refs.well_formed])  # a killed batch's scratch ref is a leftover (leftovers.py), said once
    if not findings:
        return Check("refs", "ok", f"{len(ctx.aipass_refs)} aipass refs well formed")
    status = "error" if any(f.severity == "error" for f in findings) else "warn"
    return Check("refs", status, "; ".join(f"{f.path}: {f.message}" for f in findings), findings[0].hint)
