"""Working memory, archive, index and the git drivers, on real repositories."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git, make_desk, snapshot

from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import discover
from aipass_git.memory import clauses, embedding, index, lexical
from aipass_git.memory.index import MemoryIndex

AS_API = {"AIPASS_AGENT": "api"}
MEM = ".aipass/agents/api/memory.json"


def set_limit(repo: Path, key: str, value: int) -> None:
    config = repo / ".aipass/config.yaml"
    text = config.read_text()
    start = text.index(f"  {key}: ")
    end = text.index("\n", start)
    config.write_text(text[:start] + f"  {key}: {value}" + text[end:])
    git(repo, "commit", "-qam", f"set {key}")


def add(cli, repo, text, *extra, env=AS_API):
    result = cli("memory", "add", text, *extra, "--json", cwd=repo, env=env)
    assert result.code == 0, result.err
    return json.loads(result.out)


def archive_records(repo: Path, agent: str = "api") -> list[dict]:
    records = []
    for path in sorted((repo / f".aipass/agents/{agent}/archive").glob("*.jsonl")):
        records += [json.loads(l) for l in path.read_text().splitlines() if l]
    return records


def test_memory_add_commits_on_the_current_branch(mail_repo: Path, cli):
    out = add(cli, mail_repo, "the parser needs strip() before split()")
    assert out["agent"] == "api" and out["archived"] == 0
    assert git(mail_repo, "log", "-1", "--format=%s") == "aipass: api memory: learning: the parser needs strip() before split()"
    doc = json.loads((mail_repo / MEM).read_text())
    assert [e["text"] for e in doc["learnings"]] == ["the parser needs strip() before split()"]
    assert git(mail_repo, "status", "--porcelain") == ""
    obs = add(cli, mail_repo, "tests take 3 s", "--kind", "observation")
    assert json.loads((mail_repo / MEM).read_text())["observations"][0]["id"] == obs["entry"]["id"]


def test_caps_hold_at_the_boundary_and_nothing_is_lost(mail_repo: Path, cli):
    set_limit(mail_repo, "memory_entries_per_section", 3)
    ids = [add(cli, mail_repo, f"learning number {i}")["entry"]["id"] for i in range(3)]
    assert archive_records(mail_repo) == []
    fourth = add(cli, mail_repo, "learning number 3")
    assert fourth["archived"] == 1
    ids.append(fourth["entry"]["id"])
    doc = json.loads((mail_repo / MEM).read_text())
    assert [e["id"] for e in doc["learnings"]] == ids[1:]
    [record] = archive_records(mail_repo)
    assert record["entry"]["id"] == ids[0] and record["entry"]["text"] == "learning number 0" and record["section"] == "learnings"
    # the archive moved in the same commit as the entry that pushed it out
    changed = git(mail_repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert MEM in changed and any("/archive/" in c for c in changed)


def test_the_character_cap_archives_oldest_first(mail_repo: Path, cli):
    set_limit(mail_repo, "memory_max_chars", 1000)
    texts = [f"{i}: " + "x" * 250 for i in range(5)]
    for t in texts:
        add(cli, mail_repo, t)
    assert len((mail_repo / MEM).read_text()) <= 1000
    kept = [e["text"] for e in json.loads((mail_repo / MEM).read_text())["learnings"]]
    archived = [r["entry"]["text"] for r in archive_records(mail_repo)]
    assert archived + kept == texts


def test_concurrent_adds_from_two_processes_both_land(mail_repo: Path):
    script = (
        "import sys, os; os.environ['AIPASS_AGENT'] = 'api'\n"
        "from aipass_git.cli.main import main\n"
        "for i in range(8):\n"
        "    assert main(['memory', 'add', f'{sys.argv[1]} entry {i}']) == 0\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, tag], cwd=mail_repo) for tag in ("first", "second")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    kept = [e["text"] for e in json.loads((mail_repo / MEM).read_text())["learnings"]]
    archived = [r["entry"]["text"] for r in archive_records(mail_repo)]
    assert sorted(kept + archived) == sorted(f"{t} entry {i}" for t in ("first", "second") for i in range(8))
    assert git(mail_repo, "status", "--porcelain") == ""


def test_two_branches_that_learn_merge_without_conflict(mail_repo: Path, cli):
    add(cli, mail_repo, "shared knowledge")
    git(mail_repo, "checkout", "-qb", "left")
    add(cli, mail_repo, "learned on the left")
    git(mail_repo, "checkout", "-q", "main")
    git(mail_repo, "checkout", "-qb", "right")
    add(cli, mail_repo, "learned on the right")
    # the right side also forgets the shared entry: a deletion on one side is honoured
    doc = json.loads((mail_repo / MEM).read_text())
    doc["learnings"] = [e for e in doc["learnings"] if e["text"] != "shared knowledge"]
    (mail_repo / MEM).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git(mail_repo, "commit", "-qam", "forget the shared entry")
    git(mail_repo, "checkout", "-q", "left")
    git(mail_repo, "merge", "-q", "--no-edit", "right")  # raises on a conflict
    texts = sorted(e["text"] for e in json.loads((mail_repo / MEM).read_text())["learnings"])
    assert texts == ["learned on the left", "learned on the right"]
    assert git(mail_repo, "status", "--porcelain") == ""


def test_a_merge_reapplies_the_caps(mail_repo: Path, cli):
    set_limit(mail_repo, "memory_entries_per_section", 3)
    add(cli, mail_repo, "base")
    git(mail_repo, "checkout", "-qb", "left")
    add(cli, mail_repo, "left 1")
    add(cli, mail_repo, "left 2")
    git(mail_repo, "checkout", "-q", "main")
    add(cli, mail_repo, "main 1")
    add(cli, mail_repo, "main 2")
    git(mail_repo, "merge", "-q", "--no-edit", "left")
    kept = [e["text"] for e in json.loads((mail_repo / MEM).read_text())["learnings"]]
    assert len(kept) == 3
    archived = [r["entry"]["text"] for r in archive_records(mail_repo)]
    assert sorted(kept + archived) == ["base", "left 1", "left 2", "main 1", "main 2"]


def test_with_the_hooks_a_merge_commits_its_archived_overflow(mail_repo: Path, cli):
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    set_limit(mail_repo, "memory_entries_per_section", 2)
    add(cli, mail_repo, "base")
    git(mail_repo, "checkout", "-qb", "left")
    add(cli, mail_repo, "left 1")
    git(mail_repo, "checkout", "-q", "main")
    add(cli, mail_repo, "main 1")
    git(mail_repo, "merge", "-q", "--no-edit", "left")
    deadline = time.monotonic() + 30
    while git(mail_repo, "status", "--porcelain"):  # committed in the background after the merge
        assert time.monotonic() < deadline, "the archived overflow was never committed"
        time.sleep(0.1)
    assert git(mail_repo, "log", "-1", "--format=%s") == "aipass: archive memory overflow from the merge"
    assert [r["entry"]["text"] for r in archive_records(mail_repo)] == ["base"]


def test_git_diff_shows_entries_as_lines(mail_repo: Path, cli):
    add(cli, mail_repo, "first thing")
    add(cli, mail_repo, "second thing")
    shown = git(mail_repo, "diff", "HEAD~1", "HEAD", "--", MEM)
    assert "+learning" in shown and "second thing" in shown
    assert '"text"' not in shown  # entries, not raw JSON


def test_memory_show_and_show_at_a_revision(mail_repo: Path, cli):
    add(cli, mail_repo, "old fact")
    rev = git(mail_repo, "rev-parse", "HEAD")
    add(cli, mail_repo, "new fact")
    now = cli("memory", "show", cwd=mail_repo, env=AS_API)
    assert now.code == 0 and now.out.index("new fact") < now.out.index("old fact")
    then = json.loads(cli("memory", "show", "@api", "--at", rev, "--json", cwd=mail_repo).out)
    assert [e["text"] for e in then["learnings"]] == ["old fact"]


def test_memory_diff_reports_learned_archived_and_forgot(mail_repo: Path, cli):
    set_limit(mail_repo, "memory_entries_per_section", 2)
    add(cli, mail_repo, "one")
    add(cli, mail_repo, "two")
    desk = make_desk(mail_repo, "api")
    add(cli, desk, "three", env={"AIPASS_AGENT": None})  # on the desk: pushes "one" to the archive
    doc = json.loads((desk / MEM).read_text())
    doc["learnings"] = [e for e in doc["learnings"] if e["text"] != "two"]
    (desk / MEM).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git(desk, "commit", "-qam", "forget two")
    report = json.loads(cli("memory", "diff", "aipass/api", "--json", cwd=mail_repo).out)
    [api] = report["agents"]
    assert [e["text"] for e in api["learned"]] == ["three"]
    assert [e["text"] for e in api["archived"]] == ["one"]
    assert [e["text"] for e in api["forgot"]] == ["two"]


def test_a_secret_is_refused_before_anything_is_written_unless_allowed(mail_repo: Path, cli):
    before = snapshot(mail_repo)
    text = "the key is sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345"
    refused = cli("memory", "add", text, cwd=mail_repo, env=AS_API)
    assert refused.code == 2 and "an Anthropic key" in refused.err and "--allow-secret" in refused.err
    assert snapshot(mail_repo) == before
    allowed = cli("memory", "add", text, "--allow-secret", "--json", cwd=mail_repo, env=AS_API)
    assert allowed.code == 0 and json.loads(allowed.out)["secrets"] == ["Anthropic key", "OpenAI key"]
    assert "sk-ant" in (mail_repo / MEM).read_text()
    assert "Aipass-Allowed-Secret: Anthropic key, OpenAI key" in git(mail_repo, "log", "-1", "--format=%B")


def test_a_batch_of_entries_is_one_commit(mail_repo: Path, cli):
    set_limit(mail_repo, "memory_entries_per_section", 3)
    before = int(git(mail_repo, "rev-list", "--count", "HEAD"))
    lines = mail_repo.parent / "notes.jsonl"
    lines.write_text(json.dumps({"text": "from the file, first"}) + "\n\n"
                     + json.dumps({"text": "from the file, second", "kind": "observation"}) + "\n")
    result = cli("memory", "add", "argument one", "argument two", "--from", str(lines), "--json", cwd=mail_repo, env=AS_API)
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert [e["text"] for e in out["entries"]] == ["argument one", "argument two", "from the file, first",
                                                   "from the file, second"]
    assert int(git(mail_repo, "rev-list", "--count", "HEAD")) == before + 1
    assert git(mail_repo, "log", "-1", "--format=%s") == "aipass: api memory: 4 entries (learning, observation)"
    body = git(mail_repo, "log", "-1", "--format=%B")
    assert "- argument one\n" in body and "Aipass-Event: memory-batch" in body
    doc = json.loads((mail_repo / MEM).read_text())
    assert [e["text"] for e in doc["observations"]] == ["from the file, second"]
    # three learnings fit; the caps archived none yet, and nothing was left uncommitted
    assert [e["text"] for e in doc["learnings"]] == ["argument one", "argument two", "from the file, first"]
    assert out["archived"] == 0 and git(mail_repo, "status", "--porcelain") == ""
    more = cli("memory", "add", "--from", "-", "--json", cwd=mail_repo, env=AS_API,
               input="\n".join(json.dumps({"text": f"stdin {i}"}) for i in range(3)))
    assert more.code == 0, more.err
    assert json.loads(more.out)["archived"] == 3  # the three before them, to the archive in the same commit


def test_a_batch_with_one_bad_entry_writes_nothing(mail_repo: Path, cli):
    before = snapshot(mail_repo)
    secret = cli("memory", "add", "fine", "the key is sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", cwd=mail_repo, env=AS_API)
    assert secret.code == 2 and "entry 2 looks like it holds an Anthropic key" in secret.err
    empty = cli("memory", "add", "fine", "  ", cwd=mail_repo, env=AS_API)
    assert empty.code == 2 and "entry 2: the memory entry is empty" in empty.err
    lines = mail_repo.parent / "bad.jsonl"
    lines.write_text('{"text": "ok"}\n{"text": "x", "kind": "session"}\n')
    kind = cli("memory", "add", "--from", str(lines), cwd=mail_repo, env=AS_API)
    assert kind.code == 2 and "entry 2: --kind: 'session' is not learning or observation" in kind.err
    lines.write_text('{"text": "ok"}\nnot json\n')
    broken = cli("memory", "add", "--from", str(lines), cwd=mail_repo, env=AS_API)
    assert broken.code == 2 and "bad.jsonl: line 2: not JSON" in broken.err and '{"text"' in broken.err
    lines.write_text('{"txt": "typo"}\n')
    typo = cli("memory", "add", "--from", str(lines), cwd=mail_repo, env=AS_API)
    assert typo.code == 2 and 'line 1: no "text" string' in typo.err
    missing = cli("memory", "add", "--from", str(mail_repo.parent / "nope.jsonl"), cwd=mail_repo, env=AS_API)
    assert missing.code == 2 and "nope.jsonl: No such file" in missing.err
    none = cli("memory", "add", cwd=mail_repo, env=AS_API)
    assert none.code == 2 and "no memory entries to add" in none.err
    assert snapshot(mail_repo) == before


def test_the_python_api_records_a_batch_in_one_commit(mail_repo: Path):
    from aipass_git.core import config as config_mod
    from aipass_git.memory import working

    repo = discover(mail_repo)
    config = config_mod.load(repo)
    notes = [working.Note("session", f"dispatch {i} -> ok", commit=None) for i in range(30)]
    entries, commit, archived = working.record_many(repo, config, "api", notes, message_by="supervisor")
    assert len(entries) == 30 and commit == git(mail_repo, "rev-parse", "HEAD")
    kept = json.loads((mail_repo / MEM).read_text())["sessions"]
    assert kept and [e["text"] for e in kept] == [f"dispatch {i} -> ok" for i in range(30)][-len(kept):]
    assert archived == 30 - len(kept)
    assert git(mail_repo, "log", "-1", "--format=%s") == "aipass: api memory: 30 entries (session)"
    texts, commit = working.archive_many(repo, config, "api", "plans", ["plan A closed", "plan B closed"],
                                         message_by="orchestrator")
    records = archive_records(mail_repo)
    assert [r["entry"]["text"] for r in records if r["section"] == "plans"] == ["plan A closed", "plan B closed"]
    assert git(mail_repo, "log", "-1", "--format=%s") == "aipass: api memory: plans: 2 entries"


def test_bad_memory_input(mail_repo: Path, cli):
    before = snapshot(mail_repo)
    too_long = cli("memory", "add", "x" * 4001, cwd=mail_repo, env=AS_API)
    assert too_long.code == 2 and "4001 characters (at most 4000)" in too_long.err
    human = cli("memory", "add", "who am I", cwd=mail_repo)
    assert human.code == 2 and "--agent" in human.err
    unknown = cli("memory", "add", "x", "--agent", "@ghost", cwd=mail_repo)
    assert unknown.code == 2 and "no agent named 'ghost'" in unknown.err
    other = cli("memory", "add", "x", "--agent", "@docs", cwd=mail_repo, env=AS_API)
    assert other.code == 2 and "may not write @docs's memory" in other.err
    assert snapshot(mail_repo) == before


def test_a_hand_broken_memory_file_is_named_and_kept(mail_repo: Path, cli):
    path = mail_repo / MEM
    doc = json.loads(path.read_text())
    doc["learnings"] = [{"id": "not-an-id", "created": "2026-01-01T00:00:00Z", "text": "x"}]
    path.write_text(json.dumps(doc))
    broken = path.read_bytes()
    result = cli("memory", "add", "new", cwd=mail_repo, env=AS_API)
    assert result.code == 2
    assert f"{MEM}: field 'learnings[0].id'" in result.err
    assert path.read_bytes() == broken


def test_an_archive_line_that_is_not_json_is_named(mail_repo: Path, cli):
    archive = mail_repo / ".aipass/agents/api/archive/2026-01.jsonl"
    archive.parent.mkdir(parents=True)
    archive.write_text('{"archived":"x","section":"learnings","entry":{"id":"a","text":"ok"}}\nnot json\n')
    result = cli("memory", "search", "anything", "@api", cwd=mail_repo)
    assert result.code == 2 and "archive/2026-01.jsonl: line 2: not JSON" in result.err


def test_a_model_file_with_the_wrong_checksum_is_refused(tmp_path: Path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(AipassError) as info:
        embedding.Encoder(model=fake)
    assert "does not match its checksum" in info.value.message and "reinstall" in info.value.hint


@pytest.mark.skipif(not index.vector_available(), reason="the memory extra is not installed")
def test_the_optimised_graph_is_cached_and_embeds_alike(tmp_path: Path):
    texts = ["the parser needs LC_ALL=C", "staging deploys run every night at two", "a"]
    fresh = embedding.Encoder(cache=tmp_path)
    [cached_file] = tmp_path.glob("minilm-*.onnx")
    assert embedding.MODEL_SHA256[:16] in cached_file.name and not list(tmp_path.glob("*.partial"))
    again = embedding.Encoder(cache=tmp_path)
    for a, b in zip(fresh.embed(texts), again.embed(texts)):
        assert abs(float((a * b).sum()) - 1.0) < 1e-4
    # shortest-first batching gives each text the vector it gets alone
    alone = [again.embed([t])[0] for t in texts]
    for a, b in zip(alone, again.embed(texts)):
        assert abs(float((a * b).sum()) - 1.0) < 1e-4


# -- search --------------------------------------------------------------------------------

FACTS = [
    "the invoice totals are rounded to two decimals before tax",
    "staging deploys run every night at two",
    "the login page must load in under one second",
    "customer emails are queued and sent in batches",
    "the sqlite database is vacuumed on sundays",
]


def fill(cli, repo):
    for text in FACTS:
        add(cli, repo, text)


needs_vectors = pytest.mark.skipif(not index.vector_available(), reason="the memory extra is not installed")


def search_json(cli, repo, query, *extra):
    result = cli("memory", "search", query, *extra, "--json", cwd=repo)
    assert result.code == 0, result.err
    return json.loads(result.out)


@needs_vectors
def test_search_by_meaning_finds_a_paraphrase_first(mail_repo: Path, cli):
    fill(cli, mail_repo)
    for mode in ("hybrid", "vector"):
        result = search_json(cli, mail_repo, "how are bill amounts rounded", "@api", "-k", "3", "--mode", mode)
        assert result["mode"] == mode
        assert result["hits"][0]["text"] == FACTS[0]
        assert result["hits"][0]["score"] > result["hits"][1]["score"]
        assert result["hits"][0]["agent"] == "api" and result["hits"][0]["source"] == MEM
    assert search_json(cli, mail_repo, "how are bill amounts rounded", "@api")["mode"] == "hybrid"


@needs_vectors
def test_hybrid_hits_show_each_method_s_score_and_rank(mail_repo: Path, cli):
    fill(cli, mail_repo)
    hits = search_json(cli, mail_repo, "when is the sqlite database vacuumed", "@api", "-k", "5")["hits"]
    top = hits[0]
    assert top["text"] == FACTS[4]
    assert top["scores"]["vector"]["rank"] == 1 and top["scores"]["lexical"]["rank"] == 1
    assert top["scores"]["fused"] == top["score"] > 0
    # an entry that shares no word with the query is ranked by its vector alone
    wordless = [h for h in hits if h["scores"]["lexical"] is None]
    assert wordless and all(h["scores"]["vector"] is not None for h in wordless)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    lexical = search_json(cli, mail_repo, "when is the sqlite database vacuumed", "@api", "--mode", "lexical")["hits"]
    assert [h["text"] for h in lexical] == [FACTS[4]]  # the other entries share only stop words
    assert lexical[0]["scores"]["vector"] is None and lexical[0]["scores"]["fused"] is None
    assert lexical[0]["score"] == lexical[0]["scores"]["lexical"]["score"]


def test_a_mode_that_cannot_be_served_is_refused_before_indexing(mail_repo: Path, cli):
    fill(cli, mail_repo)
    bad = cli("memory", "search", "x", "@api", "--mode", "fuzzy", cwd=mail_repo)
    assert bad.code == 2 and "'fuzzy' is not one of hybrid, vector, lexical" in bad.err
    words_only = MemoryIndex(discover(mail_repo), vectors=False)
    for mode in ("vector", "hybrid"):
        with pytest.raises(RefusedError) as info:
            words_only.search("rounding", ["api"], 3, mode)
        assert f"--mode {mode} needs the memory extra" in info.value.message
        assert "aipass-git[memory]" in info.value.hint and "--mode lexical" in info.value.hint
    assert words_only.default_mode() == "lexical"


@needs_vectors
def test_the_index_rebuilds_itself_and_follows_file_changes(mail_repo: Path, cli):
    fill(cli, mail_repo)
    first = search_json(cli, mail_repo, "nightly release to staging", "@api")
    shutil.rmtree(Path(git(mail_repo, "rev-parse", "--path-format=absolute", "--git-common-dir")) / "aipass/memory-index")
    again = search_json(cli, mail_repo, "nightly release to staging", "@api")
    assert again["hits"][0]["text"] == first["hits"][0]["text"] == FACTS[1]
    # a checkout that changes the file under the index: the next search sees it
    git(mail_repo, "checkout", "-q", "HEAD~4", "--", MEM)
    after = search_json(cli, mail_repo, "nightly release to staging", "@api")
    assert FACTS[1] not in [h["text"] for h in after["hits"]]
    rebuilt = json.loads(cli("reindex", "--json", cwd=mail_repo).out)
    assert rebuilt["backend"] == "chroma+fts5" and rebuilt["entries"] >= 1


@needs_vectors
def test_unchanged_and_moved_entries_are_not_embedded_again(mail_repo: Path, cli):
    set_limit(mail_repo, "memory_entries_per_section", 3)
    fill(cli, mail_repo)  # two of the five already archived
    repo = discover(mail_repo)
    memory_index = MemoryIndex(repo)
    first = memory_index.sync()
    assert first["entries"] == 5 and first["embedded"] == 5 and first["reused"] == 0
    assert memory_index.sync() == {"sources": 0, "removed": 0, "entries": 0, "embedded": 0, "reused": 0}
    add(cli, mail_repo, "the cron job for backups runs at midnight")  # pushes FACTS[2] to the archive
    second = memory_index.sync()
    # the new entry is embedded; FACTS[2] moved (new key, same text) and keeps its vector
    assert second["embedded"] == 1 and second["reused"] == 1
    hits = memory_index.search("page load time budget", ["api"], 1, "vector")
    assert hits[0].text == FACTS[2] and "/archive/" in hits[0].source
    memory_index.close()


@needs_vectors
def test_a_vector_the_catalog_does_not_list_is_never_shown(mail_repo: Path, cli):
    fill(cli, mail_repo)
    memory_index = MemoryIndex(discover(mail_repo))
    memory_index.sync()
    from aipass_git.memory.embedding import encoder

    # what a crash between the vector store's write and the catalog's commit leaves behind
    memory_index.store.upsert("api", ["stray#1"], encoder().embed(["how are bill amounts rounded"]))
    hits = memory_index.search("how are bill amounts rounded", ["api"], 5, "vector")
    assert "stray#1" not in [h.key for h in hits] and hits[0].text == FACTS[0]
    memory_index.close()


@needs_vectors
def test_chromadb_s_public_client_reads_the_same_index(mail_repo: Path, cli):
    fill(cli, mail_repo)
    repo = discover(mail_repo)
    core = MemoryIndex(repo)
    core.sync()
    expected = [(h.key, h.scores["vector"]["rank"]) for h in core.search("rounding of bills", ["api"], 5, "vector")]
    core.close()
    client = MemoryIndex(repo, public_client=True)
    assert client.store.core.__class__.__name__ == "_ClientCore"
    assert [(h.key, h.scores["vector"]["rank"]) for h in client.search("rounding of bills", ["api"], 5, "vector")] == expected
    client.close()


def test_keyword_search_is_the_fallback(mail_repo: Path, cli):
    fill(cli, mail_repo)
    words_only = MemoryIndex(discover(mail_repo), vectors=False)
    words_only.sync()
    hits = words_only.search("database vacuum sundays", ["api"], 3)
    assert hits[0].text == FACTS[4]
    # stems meet: "rounding" finds "rounded", "vacuuming" finds "vacuumed"
    assert words_only.search("rounding", ["api"], 3)[0].text == FACTS[0]
    assert words_only.search("vacuuming", ["api"], 3)[0].text == FACTS[4]
    assert words_only.search("database", ["docs"], 3) == []
    assert words_only.search("what is the", ["api"], 3) == []  # stop words alone match nothing
    words_only.close()


def test_query_words_become_an_fts5_expression():
    assert lexical.terms("What does the Parser do when LC_ALL isn't set?") == ["parser", "lc_all", "isn", "set"]
    assert lexical.match_expression('the "quoted" parser') == '"quoted"* OR "parser"*'
    assert lexical.match_expression("the of and") == ""


def test_a_question_splits_into_its_clauses():
    assert clauses.split("why does the importer hang when a row is empty; see E1234") == [
        "why does the importer hang", "a row is empty", "see E1234"]
    assert clauses.split("a deploy runs, and then the cache is cold") == ["a deploy runs", "the cache is cold"]
    assert clauses.split("rounding of bills") == ["rounding of bills"]
    assert clauses.split("when, if") == ["when, if"]  # no clause with a word: the question as it is


@needs_vectors
def test_an_entry_that_answers_every_clause_outranks_those_that_answer_one(mail_repo: Path, cli):
    both = "the CSV importer freezes if the drive is almost out of space"
    for text in (both, "the CSV importer hangs when the locale is not English",
                 "the nightly backup fails when the disk is nearly full"):
        add(cli, mail_repo, text)
    memory_index = MemoryIndex(discover(mail_repo))
    memory_index.sync()
    hits = memory_index.search("the CSV importer hangs when the disk is nearly full", ["api"], 3, "vector")
    assert [h.text for h in hits][0] == both and len(hits) == 3
    memory_index.close()


@needs_vectors
def test_the_entry_that_answers_every_clause_is_found_among_many_that_answer_one(mail_repo: Path):
    # each decoy matches one clause closely and the other not at all: the entry that matches
    # both loosely is the best by coverage, though it is nearest to neither clause
    both = "the CSV importer freezes if the drive is almost out of space"
    texts = [both]
    texts += [f"the CSV importer hangs when {cause}" for cause in
              ("the locale is not English", "a row is empty", "the clock jumps", "two users edit at once")]
    texts += [f"{job} fails when the disk is nearly full" for job in
              ("the nightly backup", "the log rotation", "the thumbnail cache", "the mail spool")]
    write_archive(mail_repo, texts)
    memory_index = MemoryIndex(discover(mail_repo))
    memory_index.sync()
    # one candidate only: with the nearest to each clause, it would be a decoy
    assert [memory_index.catalog.rows([k])[k].text for k, _ in
            memory_index.nearest("the CSV importer hangs when the disk is nearly full", ["api"], 1)] == [both]
    memory_index.close()


def test_the_names_a_question_mentions_become_phrases():
    assert lexical.names("exit code 92, see retry-85.yaml; flag --strict-audit, set LEGACY_LOCALE (error E2914)") == {
        "retry 85 yaml": "retry-85.yaml", "strict audit": "strict-audit", "legacy locale": "legacy_locale",
        "code 92": "code 92", "e2914": "e2914"}
    assert lexical.names("the sign-in page is slow, e.g. at noon") == {}  # a hyphenated word, an abbreviation
    assert lexical.names("run it with --dry-run") == {"dry run": "dry-run"}  # a flag is
    assert lexical.names("what is the 92") == {}  # a number beside stop words only
    assert lexical.naming("set LEGACY_LOCALE=1", "legacy locale", "legacy_locale") == 2
    assert lexical.naming("flag --legacy-locale", "legacy locale", "legacy_locale") == 1
    assert lexical.naming("set LEGACY_LOCALES", "legacy locale", "legacy_locale") == 0
    expression = lexical.match_expression("crash in parser_utils.py, exit code 92")
    assert '"parser utils py"' in expression and '"code 92"' in expression and '"parser_utils"*' in expression


@needs_vectors
def test_an_entry_that_names_what_the_question_names_comes_first(mail_repo: Path, monkeypatch):
    from aipass_git.memory import fusion

    named = "the spreadsheet upload aborts on blank rows; exit code 92 (see loader-7.yaml)"
    texts = [named] + [f"the CSV loader fails on empty lines, exit code {code} (see loader-{code}.yaml)"
                       for code in (17, 18, 19, 21)]
    write_archive(mail_repo, texts)
    memory_index = MemoryIndex(discover(mail_repo))
    memory_index.sync()
    query = "why does the CSV loader fail on empty lines with exit code 92, loader-7.yaml"
    hits = memory_index.search(query, ["api"], 3)
    assert hits[0].text == named and hits[0].scores["names"]["rank"] == 1
    assert hits[1].scores["names"] is None
    # the vectors alone prefer an entry in the question's words that names something else
    monkeypatch.setitem(fusion.WEIGHTS, "names", 0.0)
    assert memory_index.search(query, ["api"], 3)[0].text != named
    memory_index.close()


@needs_vectors
def test_entries_that_name_alike_are_ordered_by_meaning_below_a_better_spelling(mail_repo: Path):
    texts = ["the nightly backup is slow, exit code 92",
             "the spreadsheet upload aborts on blank rows, exit code 92",
             "the CSV loader fails on empty lines, exit code 93",
             "the CSV loader fails on empty lines, see retry_85.yaml",
             "the nightly backup is slow, see retry-85.yaml"]
    write_archive(mail_repo, texts)
    memory_index = MemoryIndex(discover(mail_repo))
    memory_index.sync()
    text_of = {r.key: r.text for r in memory_index.catalog.all_rows()}

    def named(query: str) -> list[str]:
        return [text_of[key] for key, _ in memory_index.rankings(query, ["api"], 5, "hybrid")["names"]]

    # the same name: the one about the question's subject first; another number is no name of it
    assert named("why does the CSV loader fail on empty lines with exit code 92") == [texts[1], texts[0]]
    # spelled as asked beats the same words spelled otherwise, whatever the meaning
    assert named("why does the CSV loader fail on empty lines, retry-85.yaml") == [texts[4], texts[3]]
    memory_index.close()


def write_archive(repo: Path, texts: list[str]) -> None:
    archive = repo / ".aipass/agents/api/archive/2025-06.jsonl"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive, "a", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            entry = {"id": f"e{i:04d}", "created": f"2025-06-01T00:00:{i % 60:02d}Z", "text": text}
            fh.write(json.dumps({"archived": "2025-07-01T00:00:00Z", "section": "learnings", "entry": entry}) + "\n")


def test_a_word_in_most_entries_is_left_out_of_the_keyword_query(mail_repo: Path):
    assert lexical.match_expression("parser fails", lambda term: term != "fails") == '"parser"*'
    assert lexical.match_expression("fails", lambda term: False) == '"fails"*'  # alone, never nothing at all
    assert lexical.match_expression("fails", lambda term: False, all_common=False) == ""  # beside the vectors
    # every entry says "fails", and the wanted one says it twice: with the word asked for,
    # BM25 would put it first only by that; left out, the rare word decides
    texts = [f"job {i} fails when the network drops" for i in range(lexical.COMMON_FLOOR * 2)]
    texts.append("the exporter fails and fails on sundays")
    texts.append("the exporter runs on sundays, never fails")
    write_archive(mail_repo, texts)
    words_only = MemoryIndex(discover(mail_repo), vectors=False)
    words_only.sync()
    hits = words_only.search("exporter fails sundays", ["api"], 5)
    assert {h.text for h in hits} == set(texts[-2:])  # no entry that matches only "fails"
    assert all(h.scores["lexical"]["rank"] == 1 for h in hits)  # "fails" did not tell them apart
    words_only.close()


@needs_vectors
def test_beside_the_vectors_a_question_of_common_words_has_no_keyword_list(mail_repo: Path):
    write_archive(mail_repo, [f"job {i} fails when the network drops" for i in range(lexical.COMMON_FLOOR * 2)])
    memory_index = MemoryIndex(discover(mail_repo))
    memory_index.sync()
    assert memory_index.rankings("network fails", ["api"], 5, "hybrid")["lexical"] == []
    assert len(memory_index.rankings("network fails", ["api"], 5, "lexical")["lexical"]) == 5
    assert len(memory_index.search("network fails", ["api"], 5)) == 5  # the vectors still rank them
    memory_index.close()


def test_archived_entries_reach_the_wake_prompt(mail_repo: Path, cli):
    from aipass_git.memory.search import related

    set_limit(mail_repo, "memory_entries_per_section", 2)
    fill(cli, mail_repo)  # three of the five move to the archive
    found = related(discover(mail_repo), "api", "rounding of invoice amounts", k=2)
    assert any("invoice totals" in f for f in found)


@needs_vectors
def test_a_running_daemon_serves_searches_with_the_same_answer(mail_repo: Path, cli):
    from aipass_git.memory import search as search_mod, served

    fill(cli, mail_repo)
    here = search_json(cli, mail_repo, "how are bill amounts rounded", "@api", "-k", "3")
    assert here["served"] is False
    daemon = subprocess.Popen([sys.executable, "-m", "aipass_git", "daemon", "run", "--poll", "0.05"], cwd=mail_repo,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        sock = served.socket_path(discover(mail_repo))
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and daemon.poll() is None, "the daemon's memory socket never appeared"
            time.sleep(0.02)
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        there = search_json(cli, mail_repo, "how are bill amounts rounded", "@api", "-k", "3")
        assert there["served"] is True
        assert [(h["text"], h["score"]) for h in there["hits"]] == [(h["text"], h["score"]) for h in here["hits"]]
        assert cli("reindex", cwd=mail_repo).code == 0  # the folder is rebuilt under the daemon's open index
        again = search_json(cli, mail_repo, "how are bill amounts rounded", "@api", "-k", "3")
        assert again["served"] is True and [h["text"] for h in again["hits"]] == [h["text"] for h in here["hits"]]
        # the wake prompt's related memories ask it too, and a request for another repository is refused
        assert search_mod.related(discover(mail_repo), "api", "rounding of bills") == search_mod.related(
            discover(mail_repo), "api", "rounding of bills")
        assert "error" in served.answer(discover(mail_repo), json.dumps({"root": "/", "query": "x"}).encode())
        bad = cli("memory", "search", "x", "@api", "--mode", "fuzzy", cwd=mail_repo)  # served or not, refused alike
        assert bad.code == 2
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert not served.socket_path(discover(mail_repo)).exists()
    assert search_json(cli, mail_repo, "how are bill amounts rounded", "@api", "-k", "3")["served"] is False


def test_an_archive_that_only_grew_is_read_from_where_it_was_indexed(mail_repo: Path, cli):
    archive = mail_repo / ".aipass/agents/api/archive/2025-06.jsonl"
    archive.parent.mkdir(parents=True, exist_ok=True)

    def line(entry_id: str, text: str) -> str:
        entry = {"id": entry_id, "created": "2025-06-01T00:00:00Z", "text": text}
        return json.dumps({"archived": "2025-07-01T00:00:00Z", "section": "learnings", "entry": entry}) + "\n"

    archive.write_text("".join(line(f"x{i:04d}", f"old note {i} about the parser") for i in range(50)))
    memory_index = MemoryIndex(discover(mail_repo), vectors=False)
    assert memory_index.sync()["entries"] == 50
    rel = ".aipass/agents/api/archive/2025-06.jsonl"
    with open(archive, "a", encoding="utf-8") as fh:  # two new entries, and a line repeating an indexed id
        fh.write(line("x0050", "the exporter skips rows on sundays") + line("x0001", "a second copy") +
                 line("x0051", "the cache is warmed at six"))
    assert rel in memory_index._changes().tails  # only the appended lines are read
    assert memory_index.sync()["entries"] == 2
    grown = {(r.key, r.text) for r in memory_index.catalog.rows([f"{rel}#x{i:04d}" for i in range(52)]).values()}
    assert memory_index.search("exporter sundays", ["api"], 1)[0].text == "the exporter skips rows on sundays"
    memory_index.rebuild()  # read whole: the same entries, the first copy of a repeated id kept
    assert {(r.key, r.text) for r in memory_index.catalog.rows([f"{rel}#x{i:04d}" for i in range(52)]).values()} == grown
    assert ("%s#x0001" % rel, "old note 1 about the parser") in grown
    # an earlier line changed: not an append, the file is read whole again
    archive.write_text(archive.read_text().replace("old note 3 about", "rewritten note 3 about"))
    assert rel not in memory_index._changes().tails
    memory_index.sync()
    assert memory_index.search("rewritten", ["api"], 1)[0].text == "rewritten note 3 about the parser"
    memory_index.close()
    # a bad line appended is named by its line in the whole file
    with open(archive, "a", encoding="utf-8") as fh:
        fh.write("not json\n")
    result = cli("memory", "search", "anything", "@api", cwd=mail_repo)
    assert result.code == 2 and "archive/2025-06.jsonl: line 54: not JSON" in result.err
