"""The monitor: what a refresh costs, and what the live view costs while nothing happens.

Builds a throw-away demo repository (isolated HOME and git config) with 100 more agents
and 100 rounds of `send @all` (about 10,400 events on the mailbox refs), then:

1. refreshes (Watcher.take, what each redraw reads) when something changed (a message
   sent just before) and when nothing did;
2. writes `git aipass report --html` (a new process each time);
3. runs `git aipass monitor` in a tmux terminal for --idle seconds and reads its CPU time.

    python bench/monitor.py [--runs N] [--idle SECONDS]

Goals (from the monitor issue): a refresh <= 100 ms with 100 agents and 10,000 events;
idle CPU <= 2 % of one core; report generation over 10,000 events <= 3 s.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import demo_repo, show  # noqa: E402

import aipass_git  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="aipass-bench-monitor-", ignore_cleanup_errors=True) as tmp_name:
        repo = demo_repo(Path(tmp_name))
        from aipass_git.agents.registry import Registry
        from aipass_git.agents.session import Session
        from aipass_git.core.repo import discover
        from aipass_git.mail.postoffice import PostOffice
        from aipass_git.monitor.snapshot import Watcher

        found = discover(repo)
        Registry(found).create_many([{"name": f"m{i:03d}", "role": "watched", "provider": "command"} for i in range(100)])
        for r in range(100):
            with PostOffice(Session.of_human(found)) as po:
                po.send(["@all"], f"round {r}", "to everyone")
        watcher = Watcher(found)
        start = time.perf_counter()
        watcher.take()
        show("first refresh (reads everything)", [time.perf_counter() - start])
        changed, idle = [], []
        for i in range(args.runs):
            with PostOffice(Session.of_human(found)) as po:
                po.send(["@m001"], f"poke {i}", "something changed")
            start = time.perf_counter()
            watcher.take()
            changed.append(time.perf_counter() - start)
            start = time.perf_counter()
            watcher.take()
            idle.append(time.perf_counter() - start)
        show("refresh after a change (100 agents, ~10k events)", changed)
        show("refresh with nothing new", idle)
        page = Path(tmp_name) / "report.html"
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(["git", "aipass", "report", "--html", str(page)], cwd=repo, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        show("report --html (~10k messages, a new process)", times)
        tmux = shutil.which("tmux")
        if tmux is None:
            print("idle CPU: not measured (tmux is not installed)")
            return
        script = Path(tmp_name) / "monitor.sh"
        script.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in os.environ.items() if k.isidentifier())
                          + f"cd {shlex.quote(str(repo))}\nexec {shlex.quote(sys.executable)} -m aipass_git monitor\n")
        socket = f"aipass-bench-{os.getpid()}"
        subprocess.run([tmux, "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "mon", "-x", "200", "-y", "60",
                        "sh", str(script)], check=True)
        try:
            time.sleep(3)
            pid = int(subprocess.run([tmux, "-L", socket, "list-panes", "-t", "mon", "-F", "#{pane_pid}"],
                                     capture_output=True, text=True).stdout.split()[0])
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = lambda: sum(map(int, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])) / ticks  # noqa: E731
            before, t0 = cpu(), time.monotonic()
            time.sleep(args.idle)
            share = (cpu() - before) / (time.monotonic() - t0) * 100
            print(f"idle monitor, {args.idle:.0f} s: {share:.2f} % of one core", flush=True)
        finally:
            subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True)


if __name__ == "__main__":
    main()
