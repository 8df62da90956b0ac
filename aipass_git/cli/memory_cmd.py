"""Memory commands: memory add/show/search/diff, reindex, and the git drivers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from aipass_git.agents.session import Session
from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, progress as progress_bar, short, table
from aipass_git.core import config as config_mod, names
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.schemas import MEMORY_SHOWN
from aipass_git.core.text import for_terminal, plural
from aipass_git.memory import served as served_search, verbs

app = commands()

memory_app = group("memory", "Agents' working memory, its archive, and search by meaning.")
app.add_typer(memory_app, name="memory")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


def _session():
    return Session.open(discover())


@memory_app.command("add")
def add(
    texts: Optional[List[str]] = typer.Argument(None, metavar="[TEXT]...",
                                                help="What was learned or observed, a sentence or two each (after -- if one starts with -)."),
    source: Optional[str] = typer.Option(None, "--from", metavar="FILE",
                                         help='JSON lines, one entry each: {"text": "...", "kind": "observation"} (- reads stdin).'),
    kind: str = typer.Option("learning", "--kind", help="learning or observation (the default of --from's lines too)."),
    agent: Optional[str] = typer.Option(None, "--agent", metavar="@AGENT", help="Whose memory (the human must say)."),
    allow_secret: bool = typer.Option(False, "--allow-secret",
                                      help="Record it even though it looks like a credential (the commit says so)."),
    as_json: bool = JSON,
) -> None:
    """Record entries in working memory and commit them on the current branch (your desk):
    one commit for all of them.

    An entry that looks like it holds a credential is refused before anything is written:
    memory and its commit message stay in history.
    """
    items = [(text, kind) for text in texts or []]
    if source is not None:
        data = sys.stdin.buffer.read() if source == "-" else _read_file(source)
        items += verbs.read_batch(data, "stdin" if source == "-" else source, kind)
    batch = verbs.add_many(_session(), items, agent=agent, allow_secret=allow_secret)
    if as_json:
        out = {"agent": batch.agent, "entries": batch.entries, "commit": batch.commit, "archived": batch.archived,
               "secrets": batch.secrets}
        emit_json({**out, "entry": batch.entries[0]} if len(batch.entries) == 1 else out)
        return
    extra = f"; {plural(batch.archived, 'older entry', 'older entries')} archived" if batch.archived else ""
    if len(batch.entries) == 1:
        typer.echo(f"@{batch.agent} {items[0][1]} {batch.entries[0]['id'][:12]} recorded ({short(batch.commit)}){extra}")
    else:
        typer.echo(f"@{batch.agent} {plural(len(batch.entries), 'entry', 'entries')} recorded ({short(batch.commit)}){extra}")


def _read_file(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise RefusedError(f"--from {name}: {exc.strerror}", "give a file of JSON lines, or - for stdin") from None


@memory_app.command("show")
def show(
    agent: Optional[str] = typer.Argument(None, metavar="[@AGENT]", help="Whose memory (default: your own)."),
    at: Optional[str] = typer.Option(None, "--at", metavar="REV", help="As committed at this branch, tag or commit."),
    as_json: bool = JSON,
) -> None:
    """Show an agent's working memory, newest entries first."""
    owner, doc = verbs.show(_session(), agent, at=at)
    if as_json:
        emit_json(doc)
        return
    typer.echo(f"memory of @{owner}" + (f" at {at}" if at else ""))
    for section in MEMORY_SHOWN:
        entries = doc[section]
        typer.echo(f"\n{section} ({len(entries)})")
        for e in reversed(entries):
            typer.echo(for_terminal(f"  {e['created'][:10]} {e['id'][:12]}  {' '.join(e['text'].split())}"))


@memory_app.command("search")
def search(
    query: str = typer.Argument(..., help="What to look for, in your own words."),
    agent: Optional[str] = typer.Argument(None, metavar="[@AGENT]", help="Whose memory (default: yours; the human's default is everyone's)."),
    everyone: bool = typer.Option(False, "--all", help="Search every agent's memory."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="How many entries."),
    mode: Optional[str] = typer.Option(None, "--mode", metavar="hybrid|vector|lexical",
                                       help="How to rank: by meaning and words together (the default), by meaning, or by words."),
    as_json: bool = JSON,
) -> None:
    """Find memory entries by meaning and by words (words only without the memory extra).

    --json shows each hit's scores: vector (similarity and rank), lexical (BM25 and rank),
    names (how well it names the error codes, files, flags and numbers the query names, and
    rank) and fused (reciprocal rank fusion of them).
    """
    query = verbs.check_query(query)
    session = _session()
    agents = verbs.scope(session, agent, everyone)
    served = served_search.ask(session.repo, query, agents, k, mode)  # a running daemon has the model loaded
    if served is not None:
        hits, used = served
    else:
        from aipass_git.memory import index  # deferred: a served search never loads the index's code
        from aipass_git.memory.search import search as run_search  # deferred: as above

        if mode is None and not index.vector_available():
            sys.stderr.write(
                "note: search by meaning needs the memory extra: pip install 'aipass-git[memory]'; using keyword search\n"
            )
        with progress_bar("indexing memory") as progress:
            found, used = run_search(session.repo, query, agents, k, mode=mode, progress=progress)
        hits = [h.as_dict() for h in found]
    if as_json:
        emit_json({"v": 1, "mode": used, "query": query, "hits": hits, "served": served is not None})
        return
    if not hits:
        typer.echo("no entries found")
        return
    typer.echo(table(["SCORE", "AGENT", "DATE", "SECTION", "WHERE", "ENTRY"],
                     [(f"{h['score']:.3f}", f"@{h['agent']}", h["created"][:10], h["section"],
                       "memory" if h["source"].endswith("memory.json") else h["source"].rsplit("/", 1)[-1], h["text"])
                      for h in hits], max_width=100))


@memory_app.command("diff")
def diff(
    spec: Optional[str] = typer.Argument(None, metavar="[BRANCH|RANGE]", help="A branch (against the base branch) or A..B / A...B. Default: HEAD."),
    agent: Optional[str] = typer.Option(None, "--agent", metavar="@AGENT", help="Only this agent."),
    as_json: bool = JSON,
) -> None:
    """What agents learned, forgot and archived on a branch, for review."""
    from aipass_git.memory import review  # deferred: as in reindex

    repo = discover()
    config = config_mod.load(repo)
    report = review.diff(repo, config, spec, names.normalize(agent) if agent else None)
    if as_json:
        emit_json({"v": 1, **report})
        return
    if not report["agents"]:
        typer.echo(f"no memory changes between {report['old'][:10]} and {report['new'][:10]}")
    for a in report["agents"]:
        typer.echo(f"@{a['agent']}")
        for label, sign in (("learned", "+"), ("archived", ">"), ("forgot", "-")):
            for e in a[label]:
                typer.echo(f"  {sign} {label:<8} {e['section'][:-1]:<11} {' '.join(e['text'].split())}")


@memory_app.command("sync", hidden=True)
def sync() -> None:
    """Bring the index in line with the files (run in the background by the git hooks)."""
    from aipass_git.memory.index import MemoryIndex  # deferred: only sync and search load the index's code

    memory_index = MemoryIndex(discover())
    try:
        memory_index.sync()
    finally:
        memory_index.close()


@memory_app.command("commit-overflow", hidden=True)
def commit_overflow() -> None:
    """Commit what the merge driver archived (run in the background by the post-merge hook)."""
    from aipass_git.hooks.events import commit_merge_overflow  # deferred: as in reindex

    commit_merge_overflow(discover())


@memory_app.command("textconv", hidden=True)
def textconv(file: Path = typer.Argument(...)) -> None:
    """git's diff driver for memory.json (installed by init)."""
    from aipass_git.memory.drivers import textconv as convert  # deferred: as in reindex

    sys.stdout.write(convert(file.read_bytes()))


@memory_app.command("merge-driver", hidden=True)
def merge_driver(base: Path, ours: Path, theirs: Path, path: str) -> None:
    """git's merge driver for memory.json (installed by init)."""
    from aipass_git.memory.drivers import merge_files  # deferred: as in reindex

    raise typer.Exit(merge_files(base, ours, theirs, path, Path.cwd()))


@app.command()
def reindex(as_json: bool = JSON) -> None:
    """Rebuild the memory index and the mail summary index from git (both derived; nothing is lost)."""
    # deferred, here and in the other commands: a cold `memory search` imports only what
    # searching needs (the mail index and the hooks cost ~80 ms)
    from aipass_git.mail.summary_index import SummaryIndex  # deferred: see above
    from aipass_git.memory.search import reindex as rebuild  # deferred: see above
    from aipass_git.store.events import EventStore  # deferred: see above

    repo = discover()
    with progress_bar("reindexing memory") as progress:
        stats, backend = rebuild(repo, progress)
    with EventStore(repo) as store, SummaryIndex(store) as index:
        mailboxes = index.rebuild()
    if as_json:
        emit_json({"v": 1, "backend": backend, **stats, "mailboxes": mailboxes})
    else:
        typer.echo(f"reindexed {plural(stats['entries'], 'entry', 'entries')} from {plural(stats['sources'], 'file')} ({backend})"
                   f" and {plural(mailboxes, 'mailbox', 'mailboxes')}")
