"""`.aipass` integrity: config, passports, memory, archives, agents' files."""

from __future__ import annotations

from collections import Counter

from aipass_git.audit.engine import Problem, standard
from aipass_git.core import files, schemas
from aipass_git.core.canonical import dumps
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import AGENTS_DIR, AIPASS_DIR, CONFIG_FILE
from aipass_git.memory import working
from aipass_git.core.text import plural


def _folders(ctx) -> list[str]:
    folder = ctx.repo.agents_dir
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [n for n in names if ctx.agent is None or n == ctx.agent]


@standard("aipass.config", "the project config .aipass/config.yaml exists and is valid")
def config_valid(ctx):
    try:
        ctx.config
    except AipassError as exc:
        yield Problem(CONFIG_FILE, exc.message, exc.hint or "")


@standard("aipass.passport", "every agent's passport.json is valid and names its folder")
def passports_valid(ctx):
    for name in _folders(ctx):
        try:
            ctx.registry.get(name)
        except AipassError as exc:
            yield Problem(f"{AGENTS_DIR}/{name}/passport.json", exc.message, exc.hint or "")


@standard("aipass.memory", "every agent's memory.json is valid")
def memory_valid(ctx):
    for name in _folders(ctx):
        try:
            working.load(ctx.repo.root, name)
        except AipassError as exc:
            yield Problem(working.memory_rel(name), exc.message, exc.hint or "")


@standard("aipass.memory-caps", "working memory stays within the caps of the config")
def memory_caps(ctx):
    caps = working.Caps.of(ctx.config)
    for name in _folders(ctx):
        try:
            doc = working.load(ctx.repo.root, name)
        except AipassError:
            continue  # aipass.memory reports it
        rel = working.memory_rel(name)
        for section in schemas.MEMORY_SECTIONS:
            if len(doc[section]) > caps.entries:
                yield Problem(rel, f"{section} has {plural(len(doc[section]), 'entry', 'entries')} (cap {caps.entries})",
                              "write through `git aipass memory add`, which archives the overflow")
            for e in doc[section]:
                if len(e["text"]) > caps.entry_chars:
                    yield Problem(rel, f"entry {e['id']} is {len(e['text'])} characters (cap {caps.entry_chars})",
                                  "split it into shorter entries")
        if len(dumps(doc)) > caps.chars:
            yield Problem(rel, f"memory.json is {len(dumps(doc))} characters (cap {caps.chars})",
                          "archive old entries: any `git aipass memory add` re-applies the caps")


@standard("aipass.archive", "archive files hold one valid record per line")
def archives_valid(ctx):
    for rel in ctx.aipass_files():
        if "/archive/" in rel and rel.endswith(".jsonl"):
            data = ctx.read(rel)
            if data is None:
                continue
            try:
                records = working.read_archive(data, rel)
            except AipassError as exc:
                yield Problem(rel, exc.message, exc.hint or "")
                continue
            counts = Counter(r["entry"]["id"] for r in records)
            for entry_id, n in sorted(counts.items()):
                if n > 1:
                    yield Problem(rel, f"entry {entry_id} is archived {n} times (a write was repeated); "
                                       "memory search counts it once",
                                  "harmless; archives are append-only, so the extra line stays", severity="warning")


@standard("aipass.archive-append-only", "archives only grow: no line is rewritten or removed")
def archives_append_only(ctx):
    base = ctx.base or "HEAD"
    for rel in ctx.aipass_files():
        if "/archive/" not in rel or not rel.endswith(".jsonl"):
            continue
        old, new = ctx.git_object(f"{base}:{rel}"), ctx.read(rel)
        if old is None or new is None:
            continue
        if not new.startswith(old):
            yield Problem(rel, f"lines present at {base} were changed or removed",
                          f"archives are append-only; restore them with: git checkout {base} -- {rel}")


@standard("aipass.no-links", "no symbolic links in .aipass: aipass-git never follows them")
def no_links(ctx):
    for rel in files.links_under(ctx.repo.root, AIPASS_DIR):
        yield Problem(rel, "is a symbolic link: aipass-git refuses to read or write through it",
                      f"replace it with the real file or folder (if git tracks the link: git rm --cached {rel})")


@standard("aipass.agent-files", "each agent folder has passport.json, memory.json and README.md")
def agent_files(ctx):
    for name in _folders(ctx):
        for file in ("passport.json", "memory.json", "README.md"):
            if not (ctx.repo.agents_dir / name / file).is_file():
                yield Problem(f"{AGENTS_DIR}/{name}/{file}", "is missing",
                              "restore it with git checkout, or retire the agent", severity="warning" if file == "README.md" else None)


@standard("aipass.orchestrator", "the configured orchestrator exists and is active")
def orchestrator(ctx):
    name = ctx.config.orchestrator
    try:
        agent = ctx.registry.get(name)
    except AipassError:
        yield Problem(CONFIG_FILE, f"the orchestrator {name!r} has no passport", "run: git aipass init")
        return
    if not agent.active:
        yield Problem(CONFIG_FILE, f"the orchestrator {name!r} is retired", "name an active agent as orchestrator")


@standard("aipass.allowed-signers", ".aipass/allowed_signers is what the passports' keys and .aipass/humans/ make")
def allowed_signers(ctx):
    from aipass_git.agents import trust  # deferred: only the full audit reads every passport

    path = ctx.repo.root / trust.SIGNERS_FILE
    if not path.is_file() and not (ctx.repo.root / trust.HUMANS_DIR).is_dir():
        return  # a repository from before signed events
    try:
        expected = trust.files_for(ctx.repo, {})[trust.SIGNERS_FILE]
    except AipassError:
        return  # a broken passport or key file is its own standard's finding
    def lines(data: bytes) -> set[bytes]:
        # as a set: a union merge of two clones' keys may order lines either way
        return {line for line in data.splitlines() if line.strip() and not line.startswith(b"#")}

    if not path.is_file() or lines(path.read_bytes()) != lines(expected):
        yield Problem(trust.SIGNERS_FILE, "does not match the keys in the passports and .aipass/humans/ "
                      "(edited by hand, or merged as lines)", "regenerate it: git aipass init (it commits the file as its sources make it)")


@standard("aipass.retired-not-addressed", "no work waits for a retired agent", severity="warning")
def retired_not_addressed(ctx):
    from aipass_git.mail import mailbox  # deferred: the commit hook loads every standard; only the full audit reads mail
    from aipass_git.store.events import EventStore

    retired = [a for a in ctx.agents if not a.active]
    if not retired:
        return
    with EventStore(ctx.repo) as store:
        for agent in retired:
            waiting = [l for l in mailbox.MailboxReader(store, agent.name).summaries() if l["status"] != "done"]
            if waiting:
                yield Problem(f"{AGENTS_DIR}/{agent.name}/passport.json",
                              f"retired @{agent.name} still has {plural(len(waiting), 'undone message')}",
                              f"send them to another agent, then: git aipass done --as @{agent.name} ID...")
            if agent.owns:
                yield Problem(f"{AGENTS_DIR}/{agent.name}/passport.json",
                              f"retired @{agent.name} still owns {', '.join(agent.owns)}",
                              "give those paths to an active agent")


@standard("aipass.provider", "every active agent's provider is configured with a command")
def provider_known(ctx):
    for agent in ctx.agents:
        if not agent.active:
            continue
        spec = ctx.config.providers.get(agent.provider)
        rel = f"{AGENTS_DIR}/{agent.name}/passport.json"
        if spec is None:
            yield Problem(rel, f"provider {agent.provider!r} is not in the config", f"add providers.{agent.provider} to {CONFIG_FILE}")
        elif not spec["argv"]:
            yield Problem(rel, f"provider {agent.provider!r} has an empty argv: a dispatch would bounce",
                          f"set providers.{agent.provider}.argv in {CONFIG_FILE}", severity="warning")


STANDARDS = [allowed_signers, no_links, config_valid, passports_valid, memory_valid, memory_caps, archives_valid, archives_append_only,
             agent_files, orchestrator, retired_not_addressed, provider_known]
