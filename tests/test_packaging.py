"""What ships: resources inside the package, the pre-commit manifest, the README's commands."""

import re
import subprocess
import sys
from pathlib import Path

from aipass_git.agents import templates
from aipass_git.core import resources

ROOT = Path(__file__).resolve().parent.parent


def test_templates_and_hook_shims_are_found_by_the_installed_package():
    assert (resources.templates_dir() / "config.yaml").is_file()
    assert set(templates.available()) >= {"default", "orchestrator", "reviewer"}
    for name in templates.available():
        assert templates.load(name).readme.startswith("# $name")
    assert (resources.hook_shims_dir() / "README.md").is_file()


def test_pre_commit_manifest_is_valid():
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_holds_exactly_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    commands = [l for l in readme.splitlines() if l.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert commands[0].endswith("git aipass demo") and "'.[memory]'" in commands[0]
    assert commands[1].endswith("pytest") and "'.[memory,test]'" in commands[1]
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"git aipass demo\$", ci) and re.search(r"pytest\$", ci)


def test_pre_commit_try_repo_runs_our_hooks_on_a_sample_repository(mail_repo, tmp_path):
    import json
    import os

    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def try_repo(hook):
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook, "--all-files"],
                              cwd=mail_repo, capture_output=True, text=True, env=env, timeout=600)

    ok = try_repo("aipass-validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "aipass-git .aipass files are valid" in ok.stdout and "Passed" in ok.stdout
    passport = mail_repo / ".aipass/agents/api/passport.json"
    doc = json.loads(passport.read_text())
    doc["status"] = "sleeping"
    passport.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    failed = try_repo("aipass-validate")
    assert failed.returncode == 1 and "Failed" in failed.stdout and "field 'status'" in failed.stdout
    audit = try_repo("aipass-audit")
    assert audit.returncode == 1 and "aipass.passport" in audit.stdout


def test_the_readme_local_hook_runs_with_the_pinned_pre_commit(mail_repo, tmp_path):
    """The README's `repo: local` block, as written there, under the pre-commit the test
    extra installs (`language: unsupported` needs pre-commit 4.4 or newer)."""
    import os

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "- repo: local" in block and "language: unsupported" in block
    (mail_repo / ".pre-commit-config.yaml").write_text("repos:\n" + block)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, "-m", "pre_commit", "run", "aipass-audit", "--all-files"],
                         cwd=mail_repo, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0 and "aipass audit" in run.stdout and "Passed" in run.stdout, run.stdout + run.stderr
    (mail_repo / "notes.txt").write_text("<<<<<<< HEAD\na\n=======\nb\n>>>>>>> other\n")
    subprocess.run(["git", "add", "notes.txt"], cwd=mail_repo, check=True)
    failed = subprocess.run([sys.executable, "-m", "pre_commit", "run", "aipass-audit", "--all-files"],
                            cwd=mail_repo, capture_output=True, text=True, env=env, timeout=600)
    assert failed.returncode == 1 and "hygiene.conflict-markers" in failed.stdout
