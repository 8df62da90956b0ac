"""Who exists in a repository: listing, creating and retiring agents.

The registry reads the worktree's `.aipass/agents/*/passport.json`; every passport is
validated on every read, so a broken file is reported by name, never half-used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from aipass_git.agents import ownership, passport, templates, trust
from aipass_git.core import clock, config as config_mod, git, names, schemas
from aipass_git.core.canonical import encode
from aipass_git.core.errors import AipassError, RefusedError, UnknownAgentError
from aipass_git.core.files import read as read_doc
from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.core.text import plural
from aipass_git.core.validate import List, check_input
from aipass_git.store.parsed_cache import ParsedCache
from aipass_git.store.keyring import Keyring
from aipass_git.store.worktree_commit import commit_files


_LOADED: dict[str, tuple[tuple[int, int, int], "Agent"]] = {}  # passport file -> (its stat, the agent)


@dataclass(frozen=True)
class Agent:
    name: str
    passport: dict[str, Any]
    folder: Path

    @property
    def active(self) -> bool:
        return self.passport["status"] == "active"

    @property
    def role(self) -> str:
        return self.passport["role"]

    @property
    def provider(self) -> str:
        return self.passport["provider"]

    @property
    def model(self) -> str | None:
        return self.passport["model"]

    @property
    def owns(self) -> list[str]:
        return self.passport["owns"]

    @property
    def template(self) -> str:
        return self.passport["template"]

    @property
    def status(self) -> str:
        return self.passport["status"]

    @property
    def retired(self) -> str | None:
        return self.passport["retired"]


def agent_files(name: str) -> dict[str, str]:
    base = f"{AGENTS_DIR}/{name}"
    return {"passport": f"{base}/passport.json", "memory": f"{base}/memory.json", "readme": f"{base}/README.md"}


class Registry:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._keys: Keyring | None = None
        self._creator: str | None = None
        self._passports: ParsedCache | None = None

    # -- reading ----------------------------------------------------------------------

    def all(self, *, include_retired: bool = False) -> list[Agent]:
        """Every agent, sorted by name; retired ones only when asked."""
        agents = []
        for _name, found in self.each():
            if isinstance(found, AipassError):
                raise found
            if include_retired or found.active:
                agents.append(found)
        return agents

    def each(self) -> list[tuple[str, Agent | AipassError]]:
        """Every agent folder, sorted by name, with its agent or what is wrong with its
        passport (doctor reports each, `all` the first)."""
        self.repo.require_initialised()
        try:
            with os.scandir(self.repo.agents_dir) as found:
                folders = sorted(entry.name for entry in found if entry.is_dir())
        except FileNotFoundError:
            return []
        loaded: list[tuple[str, Agent | AipassError]] = []
        for name in folders:
            try:
                loaded.append((name, self._load(name)))
            except AipassError as exc:
                loaded.append((name, exc))
        self.passports.save()
        return loaded

    def get(self, raw_name: str) -> Agent:
        """The agent RAW_NAME names, active or retired."""
        self.repo.require_initialised()
        name = names.normalize(raw_name)
        try:
            return self._load(name)
        except RefusedError:
            if (self.repo.agents_dir / name).is_dir():
                raise  # its passport is missing or broken: said as such
        known = [a.name for a in self.all()]
        raise UnknownAgentError(
            f"no agent named {name!r}",
            f"known agents: {', '.join(known)}" if known else "create one with: git aipass agent new NAME --role TEXT",
        )

    def resolve(self, raw_name: str) -> Agent:
        """The agent RAW_NAME names, if it can be addressed (not retired)."""
        agent = self.get(raw_name)
        if not agent.active:
            raise UnknownAgentError(
                f"agent {agent.name!r} is retired (since {agent.retired})",
                "retired agents keep their history but cannot be addressed; see: git aipass agent list --all",
            )
        return agent

    def _load(self, name: str) -> Agent:
        rel = agent_files(name)["passport"]
        # plain strings: pathlib's joins cost more than the stat itself, a thousand times over
        folder = f"{self.repo.root}/{AGENTS_DIR}/{name}"
        path = f"{folder}/passport.json"
        try:  # a passport is parsed once, again only when its file changed (lstat: a link is never cached)
            st = os.lstat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        cached = _LOADED.get(path)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        if stamp is not None:
            doc = self.passports.get(path, repr(stamp))
            if doc is not None:
                agent = Agent(name, doc, Path(folder))
                _LOADED[path] = (stamp, agent)
                return agent
        data = read_doc(self.repo.root, rel)
        if data is None:
            raise RefusedError(
                f"{rel} is missing",
                f"restore it with: git checkout -- {rel}   (or remove the folder {AGENTS_DIR}/{name})",
            )
        agent = Agent(name, passport.parse(data, rel, expected_name=name), Path(folder))
        if stamp is not None:
            _LOADED[path] = (stamp, agent)
            self.passports.put(path, repr(stamp), agent.passport)
        return agent

    @property
    def passports(self) -> ParsedCache:
        """Passports as last read and validated, by path and file stat (store/parsed_cache.py)."""
        if self._passports is None:
            self._passports = ParsedCache(self.repo, "passports")
        return self._passports

    # -- writing ----------------------------------------------------------------------

    def create(
        self,
        raw_name: str,
        *,
        role: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        owns: list[str] | None = None,
        template: str = "default",
        home: str | None = None,
        config: config_mod.Config | None = None,
    ) -> tuple[Agent, str | None]:
        """Create an agent from TEMPLATE and commit its files. Checks everything first."""
        config = config or config_mod.load(self.repo)
        agent, contents = self.prepare(
            raw_name, role=role, provider=provider, model=model, owns=owns, template=template, home=home, config=config
        )
        message = (
            f"aipass: add agent {agent.name}\n\n"
            f"Role: {agent.role}\nProvider: {agent.provider}{f' ({model})' if model else ''}\n"
            f"Template: {agent.template}\n\nAipass-Event: agent-new\nAipass-Agent: {agent.name}\n"
        )
        return agent, commit_files(self.repo, contents, message)

    def create_many(self, specs: list[dict[str, Any]], *, config: config_mod.Config | None = None,
                    progress: Callable[[int, int], None] | None = None) -> tuple[list[Agent], str | None]:
        """Create many agents in one commit (SPECS: mappings with name and role, and maybe
        provider, model, owns, template, home). Every one is checked before anything is
        committed; names and owned paths may not repeat within the batch either. PROGRESS
        hears (agents prepared, total)."""
        config = config or config_mod.load(self.repo)
        agents: list[Agent] = []
        contents: dict[str, bytes] = {}
        owned: dict[str, list[str]] = {}
        files = None
        for i, spec in enumerate(specs):
            where = f"agent {i + 1} ({spec.get('name', '?')})"
            unknown = set(spec) - {"name", "role", "provider", "model", "owns", "template", "home"}
            if unknown or "name" not in spec or "role" not in spec:
                raise RefusedError(f"{where}: " + (f"unknown key {sorted(unknown)[0]!r}" if unknown else "needs name and role"),
                                   "each agent is a mapping of name, role and optionally provider, model, owns, template, home")
            name = names.normalize(str(spec["name"]))
            if name in owned:
                raise RefusedError(f"{where}: the name {name!r} is given twice", "each agent needs its own name")
            agent, rendered = self.prepare(name, config=config, role=str(spec["role"]), provider=spec.get("provider"),
                                           model=spec.get("model"), owns=spec.get("owns"),
                                           template=spec.get("template", "default"), home=spec.get("home"), signers=False)
            for other, globs in owned.items():
                if agent.owns and globs:
                    files = git.tracked_files(self.repo.root) if files is None else files
                    shared = ownership.first_shared(agent.owns, globs, files)
                    if shared is not None:
                        raise RefusedError(f"{where}: {shared} is also owned by {other} in the same batch",
                                           "one owner per path: give them globs that do not overlap")
            owned[name] = agent.owns
            agents.append(agent)
            contents.update(rendered)
            if progress and (i % 50 == 49 or i + 1 == len(specs)):
                progress(i + 1, len(specs))
        if not agents:
            raise RefusedError("no agents given", "the file is a YAML list of mappings with name and role")
        contents.update(trust.files_for(self.repo, {a.name: a.passport for a in agents}))
        message = (f"aipass: add {plural(len(agents), 'agent')}\n\n" + "".join(f"{a.name}: {a.role}\n" for a in agents[:50])
                   + (f"... and {len(agents) - 50} more\n" if len(agents) > 50 else "")
                   + "\nAipass-Event: agent-new\n")
        return agents, commit_files(self.repo, contents, message)

    def prepare(
        self,
        raw_name: str,
        *,
        config: config_mod.Config,
        role: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        owns: list[str] | None = None,
        template: str = "default",
        home: str | None = None,
        signers: bool = True,
    ) -> tuple[Agent, dict[str, bytes]]:
        """Check a new agent's settings and render its files, without writing anything
        (SIGNERS: with the regenerated allowed_signers; a batch renders it once)."""
        name = names.normalize(raw_name)
        folder = self.repo.agents_dir / name
        if folder.exists():
            retired = (folder / "passport.json").is_file() and not self._load(name).active
            raise RefusedError(
                f"agent {name!r} already exists{' (retired)' if retired else ''}",
                "choose another name; names stay taken after retirement so history stays unambiguous",
            )
        tpl = templates.load(template)
        role = tpl.role if role is None else role.strip()
        check_input(role, schemas.PASSPORT.required["role"], "--role", "give one line of up to 300 characters")
        provider = provider or config.default_provider
        if provider not in config.providers:
            raise RefusedError(
                f"--provider: unknown provider {provider!r}",
                f"choose one of {', '.join(config.providers)}, or define it under providers: in .aipass/config.yaml",
            )
        if model is not None:
            check_input(model, schemas.MODEL, "--model", "give the model name the provider's CLI accepts, e.g. sonnet")
        owned = list(dict.fromkeys(owns if owns is not None else tpl.owns))
        check_input(
            owned,
            List(schemas.OWNED_GLOB, max_items=200),
            "--owns",
            "give globs relative to the repository root without '..', e.g. --owns 'src/api/**'",
        )
        self._require_unowned(owned)
        if home is not None:
            check_input(home, schemas.CLONE_NAME, "--home", "give a clone's name, as `git config aipass.clone` prints it there")
        if self._creator is None:  # once per registry: a batch of a thousand asks git once
            self._creator = git.user_ident(self.repo.root)[0]
        creator = self._creator
        doc = passport.build(
            name=name,
            role=role,
            provider=provider,
            model=model,
            owns=owned,
            template=tpl.name,
            created=clock.utc_now(),
            created_by=creator,
        )
        if home is not None:
            doc["home"] = home
        # the agent's signing key: private in this clone's keyring, public in the passport
        self._keys = self._keys or Keyring(self.repo.root)
        key = self._keys.create(trust.agent_email(name))
        doc["keys"] = [trust.key_entry(key.public_line)]
        files = agent_files(name)
        readme = tpl.render_readme(name=name, role=role, owns=owned, orchestrator=config.orchestrator)
        contents = {
            files["passport"]: encode(doc),
            files["memory"]: encode(schemas.empty_memory(name)),
            files["readme"]: readme.encode("utf-8"),
            **(trust.files_for(self.repo, {name: doc}) if signers else {}),
        }
        return Agent(name, doc, folder), contents

    def _require_unowned(self, globs: list[str]) -> None:
        """Refuse GLOBS that share a file (or a glob) with an active agent's: one owner per path."""
        if not globs or not self.repo.config_path.is_file():
            return  # `init` creating the first agent: nobody else owns anything yet
        others = [a for a in self.all() if a.owns]
        files = git.tracked_files(self.repo.root) if others else []
        for other in others:
            shared = ownership.first_shared(globs, other.owns, files)
            if shared is not None:
                raise RefusedError(
                    f"--owns: {shared} is already owned by @{other.name} ({', '.join(other.owns)})",
                    "one owner per path: choose narrower globs, or change the other agent's owns in its passport first",
                )

    def retire(self, raw_name: str, *, config: config_mod.Config | None = None) -> tuple[Agent, str | None]:
        """Mark an agent retired and commit; its files and history stay. None: was retired."""
        agent = self.get(raw_name)
        if not agent.active:
            return agent, None
        config = config or config_mod.load(self.repo)
        if agent.name == config.orchestrator:
            raise RefusedError(
                f"{agent.name!r} is the orchestrator and cannot be retired",
                "name another orchestrator in .aipass/config.yaml first",
            )
        now = clock.utc_now()
        doc = {**agent.passport, "status": "retired", "retired": now}
        if "keys" in doc:
            doc["keys"] = trust.retire_keys(doc["keys"], now)  # trusted for what it signed before, not after
        message = f"aipass: retire agent {agent.name}\n\nAipass-Event: agent-retire\nAipass-Agent: {agent.name}\n"
        commit = commit_files(self.repo, {agent_files(agent.name)["passport"]: encode(doc),
                                          **trust.files_for(self.repo, {agent.name: doc})}, message)
        return Agent(agent.name, doc, agent.folder), commit

