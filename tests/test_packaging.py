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
